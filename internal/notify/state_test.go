package notify

import (
	"errors"
	"testing"
	"time"

	"github.com/argoproj/notifications-engine/pkg/services"
)

func TestBackoff(t *testing.T) {
	for n, want := range map[int]time.Duration{1: 2 * time.Second, 2: 4 * time.Second, 3: 8 * time.Second, 8: 256 * time.Second, 9: 5 * time.Minute, 50: 5 * time.Minute} {
		if got := backoff(2*time.Second, n); got != want {
			t.Errorf("backoff(%d) = %s, want %s", n, got, want)
		}
	}
}

func TestStateLifecycle(t *testing.T) {
	s, err := decodeState("")
	if err != nil {
		t.Fatal(err)
	}
	e := Event{ID: "e1", Trigger: TriggerRolledBack, Message: "express rolled back"}
	slack := services.Destination{Service: "slack", Recipient: "rollouts"}
	hook := services.Destination{Service: "audit"}
	if s.Add(e, t0, nil) {
		t.Error("an event nobody subscribed to was taken on")
	}
	if !s.Add(e, t0, []services.Destination{slack, hook}) || s.Add(e, t0, []services.Destination{slack}) {
		t.Fatal("Add: want true the first time, false the second")
	}
	ds := s.Events["e1"].Deliveries
	if !ds[0].Due(t0) || !ds[1].Due(t0) || !s.NextAttempt().IsZero() {
		t.Fatal("new deliveries are due at once, with no retry scheduled")
	}

	ds[0].Delivered(t0)
	ds[1].Failed(t0, DefaultRetryBase, errors.New("503 Service Unavailable"))
	if ds[0].Due(t0.Add(time.Hour)) || !ds[0].Done() {
		t.Error("a delivered notification is due again")
	}
	if ds[1].Due(t0.Add(time.Second)) || !ds[1].Due(t0.Add(2*time.Second)) || ds[1].Attempts != 1 || ds[1].LastError != "503 Service Unavailable" {
		t.Errorf("failed delivery: %+v", ds[1])
	}
	if got := s.NextAttempt(); !got.Equal(t0.Add(2 * time.Second)) {
		t.Errorf("NextAttempt %s", got)
	}

	// A round trip through the ConfigMap keeps everything, the event included.
	data, err := encodeState(s)
	if err != nil {
		t.Fatal(err)
	}
	back, err := decodeState(data)
	if err != nil {
		t.Fatal(err)
	}
	if b := back.Events["e1"]; b.Event.Message != e.Message || b.Deliveries[1].Attempts != 1 || b.Deliveries[0].DeliveredAt == nil || !b.At.Equal(t0) {
		t.Errorf("round trip: %+v", b)
	}

	// Not pruned while a delivery is pending, however old; pruned once done.
	if s.Prune(t0.Add(24 * time.Hour)) {
		t.Error("pruned an event with a pending delivery")
	}
	ds[1].Delivered(t0.Add(time.Minute))
	if s.Prune(t0) || !s.Prune(t0.Add(time.Second)) || len(s.Events) != 0 {
		t.Error("Prune: an event done and older than the cut-off must go, not a newer one")
	}
	if _, err := decodeState("{"); err == nil {
		t.Error("decodeState accepted broken JSON")
	}
}

func TestStateName(t *testing.T) {
	if got := StateName("checkout"); got != "checkout-notifications" {
		t.Errorf("StateName = %s", got)
	}
	long := make([]byte, 253)
	for i := range long {
		long[i] = 'a'
	}
	a, b := StateName(string(long)), StateName(string(long[:252])+"b")
	if len(a) != 253 || len(b) != 253 || a == b {
		t.Errorf("long names: %d %d, distinct %v", len(a), len(b), a != b)
	}
}
