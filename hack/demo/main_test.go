package main

import "testing"

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
