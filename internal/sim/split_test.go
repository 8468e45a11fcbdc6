package sim

import (
	"math/rand/v2"
	"testing"
	"time"
)

func split(oneNew int32) map[string]map[string]int32 {
	return map[string]map[string]int32{
		"enterprise":    {"control": 100, "one-page": 0},
		"new-customers": {"control": 100 - oneNew, "one-page": oneNew},
	}
}

func TestConfirmerBelievesASplitReadTwice(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	type read struct {
		start int
		w     int32
		want  bool // a split is confirmed, stamped with this read's start
	}
	tests := []struct {
		name  string
		reads []read
	}{
		{"the first read confirms nothing", []read{{0, 10, false}}},
		{"a second equal read confirms", []read{{0, 10, false}, {20, 10, true}, {40, 10, true}}},
		{"a change confirms only when read again", []read{{0, 10, false}, {20, 10, true}, {40, 30, false}, {60, 30, true}}},
		{"changes in a row confirm nothing", []read{{0, 10, false}, {20, 30, false}, {40, 50, false}, {60, 50, true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Confirmer
			for i, r := range tt.reads {
				got, ok := c.Observe(at(r.start), split(r.w))
				if ok != r.want {
					t.Fatalf("read %d (%d%% at %d ms): confirmed %v, want %v", i, r.w, r.start, ok, r.want)
				}
				if ok && (!got.At.Equal(at(r.start)) || got.Weights["new-customers"]["one-page"] != r.w) {
					t.Fatalf("read %d: got %d%% at %s, want %d%% at %d ms", i, got.Weights["new-customers"]["one-page"], got.At.Sub(t0), r.w, r.start)
				}
			}
		})
	}
}

// TestConfirmedSplitsWereServed replays the failure the Confirmer exists
// for: a route that moves forward through its steps, read by a client whose
// reads take up to 300 ms (a loaded API server) and return the route at a
// random instant of the read. Every confirmed split must have been the
// route's at its At; stamping each read's start, as the simulator did, must
// not (else this test proves nothing).
func TestConfirmedSplitsWereServed(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	changes := []time.Duration{0, 2 * time.Second, 2*time.Second + 150*time.Millisecond, 5 * time.Second, 9 * time.Second}
	steps := []int32{10, 30, 50, 0, 100}
	served := func(t time.Time) int32 {
		w := steps[0]
		for i, c := range changes {
			if !t.Before(t0.Add(c)) {
				w = steps[i]
			}
		}
		return w
	}
	rng := rand.New(rand.NewPCG(15, 29))
	var c Confirmer
	var wrong, naiveWrong, confirmed int
	for now := t0; now.Before(t0.Add(12 * time.Second)); {
		start := now
		took := time.Duration(rng.Int64N(int64(300 * time.Millisecond)))
		seen := start.Add(time.Duration(rng.Int64N(int64(took) + 1)))
		w := served(seen)
		if served(start) != w {
			naiveWrong++
		}
		if sp, ok := c.Observe(start, split(w)); ok {
			confirmed++
			if got := served(sp.At); got != sp.Weights["new-customers"]["one-page"] {
				wrong++
				t.Errorf("confirmed %d%% at %s, but %d%% was served then", sp.Weights["new-customers"]["one-page"], sp.At.Sub(t0), got)
			}
		}
		now = start.Add(took + 20*time.Millisecond) // the next read follows the last one's end
	}
	t.Logf("%d reads confirmed, %d wrongly; stamping each read's start would have been wrong %d times", confirmed, wrong, naiveWrong)
	if naiveWrong == 0 {
		t.Fatal("no read straddled a change: the scenario does not exercise the race")
	}
	if confirmed < 20 {
		t.Fatalf("only %d reads confirmed", confirmed)
	}
}
