package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/rapport-dev/rapport/internal/notify"
)

func TestRefusals(t *testing.T) {
	for _, tc := range []struct {
		codes map[int]int64
		want  string
	}{
		{map[int]int64{202: 100}, ""},
		{map[int]int64{202: 100, 409: 0}, ""},
		{map[int]int64{202: 100, 409: 40}, "; 40 refused with 409: the experiment was no longer running"},
		{map[int]int64{0: 20, 202: 100, 503: 5}, "; 20 not delivered (transport errors), 5 refused with 503: collector busy"},
		{map[int]int64{400: 1}, "; 1 refused with 400: Bad Request"},
	} {
		if got := refusals(tc.codes); got != tc.want {
			t.Errorf("refusals(%v) = %q; want %q", tc.codes, got, tc.want)
		}
	}
}

func TestReceiver(t *testing.T) {
	r, err := startReceiver()
	if err != nil {
		t.Fatal(err)
	}
	defer r.stop()
	post := func(body string, sign []byte) int {
		req, _ := http.NewRequest(http.MethodPost, r.url, strings.NewReader(body))
		if sign != nil {
			req.Header.Set(notify.HeaderSignature, notify.Sign(sign, []byte(body)))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	doc := `{"id":"e1","trigger":"on-rolled-back","segment":"enterprise","variant":"one-page","message":"one-page rolled back"}`
	if code := post(doc, nil); code != http.StatusUnauthorized {
		t.Errorf("unsigned: %d, want 401", code)
	}
	if code := post(doc, []byte("another key")); code != http.StatusUnauthorized {
		t.Errorf("signed with another key: %d, want 401", code)
	}
	for range 2 { // at least once: the second delivery of e1 is a duplicate
		if code := post(doc, r.key); code != http.StatusNoContent {
			t.Errorf("signed: %d, want 204", code)
		}
	}
	got, rejected := r.wait(1, 0)
	if len(got) != 1 || got[0].Variant != "one-page" || got[0].Trigger != "on-rolled-back" || rejected != 2 {
		t.Errorf("received %+v, rejected %d; want one on-rolled-back notification and 2 rejections", got, rejected)
	}
}
