package sim

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestPostSendsServedTime: each answer carries `at`, when its customer was
// served, so that the collector counts it in the epoch of the weights it was
// drawn with even when it arrives after the next change; an answer whose
// time is unknown carries none.
func TestPostSendsServedTime(t *testing.T) {
	var got struct {
		Responses []map[string]any `json:"responses"`
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
			t.Error(err)
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	served := time.Date(2026, 11, 30, 9, 0, 0, 123456789, time.FixedZone("CET", 3600))
	res := post(context.Background(), Options{CollectorURL: srv.URL, Namespace: "shop", Experiment: "checkout", HTTPClient: srv.Client()},
		[]Answer{{Segment: "enterprise", Variant: "one-page", Score: 4, At: served}, {Segment: "enterprise", Variant: "control", Score: 5}})
	if res.Code != http.StatusAccepted || res.Err != nil {
		t.Fatalf("post: %d %v", res.Code, res.Err)
	}
	if len(got.Responses) != 2 {
		t.Fatalf("%d responses posted, want 2", len(got.Responses))
	}
	if at := got.Responses[0]["at"]; at != "2026-11-30T08:00:00.123456789Z" {
		t.Errorf("at = %v, want the served time in UTC with nanoseconds", at)
	}
	if at, ok := got.Responses[1]["at"]; ok {
		t.Errorf("an answer without a served time posted at = %v", at)
	}
}
