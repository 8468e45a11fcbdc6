//go:build bench

package cluster

import (
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/feedback"
)

// presignRate is how many webhook events per second of a measured run are
// signed before it: more than twice the fastest run recorded here.
const presignRate = 50_000

// signatures holds the signatures of a run's webhook events 0..n-1,
// computed before the run. A survey tool signs its events on its own
// servers; on this machine the load generator shares the collector's two
// cores, and signing while it sends cost it 5-6 µs of CPU per event
// (docs/benchmarks.md). Events past the table are signed when they are
// sent and counted in late; the warm-up's and the readiness probe's
// (negative numbers, not measured) are signed when sent, not counted.
type signatures struct {
	n, width int
	table    string // n values of width bytes; substrings of it cost nothing
	sign     func(seq int64) string
	late     atomic.Int64
}

// presign signs events 0..n-1 on every core. sign must give values of one
// width, as an HMAC in a fixed encoding does.
func presign(n int, sign func(seq int64) string) (*signatures, error) {
	s := &signatures{n: n, sign: sign}
	if n <= 0 {
		return s, nil
	}
	first := sign(0)
	s.width = len(first)
	table := make([]byte, n*s.width)
	copy(table, first)
	workers := runtime.GOMAXPROCS(0)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for seq := 1 + w; seq < n; seq += workers {
				v := sign(int64(seq))
				if len(v) != s.width {
					errs[w] = fmt.Errorf("event %d's signature %q is %d bytes, event 0's %d: presign needs values of one width", seq, v, len(v), s.width)
					return
				}
				copy(table[seq*s.width:], v)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	s.table = string(table)
	return s, nil
}

// value is event seq's signature.
func (s *signatures) value(seq int64) string {
	if seq >= 0 && seq < int64(s.n) {
		return s.table[int(seq)*s.width : int(seq+1)*s.width]
	}
	if seq >= 0 {
		s.late.Add(1)
	}
	return s.sign(seq)
}

func TestPresign(t *testing.T) {
	data := map[string][]byte{feedback.KeyTypeformSecret: []byte("presign-secret")}
	event := func(seq int64) []byte { return []byte(`{"event_id":"e-` + strconv.FormatInt(seq, 10) + `"}`) }
	sign := func(seq int64) string {
		_, v := feedback.Sign(cxv1.ProviderTypeform, nil, data, event(seq))
		return v
	}
	const n = 1000
	sigs, err := presign(n, sign)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	for _, seq := range []int64{-3, -1, 0, 1, 2, 499, n - 1, n, n + 7} {
		v := sigs.value(seq)
		h.Set(feedback.HeaderTypeform, v)
		if err := feedback.Verify(cxv1.ProviderTypeform, nil, data, h, event(seq)); err != nil {
			t.Errorf("event %d: signature %q does not verify: %v", seq, v, err)
		}
		if other := event(seq + 1); feedback.Verify(cxv1.ProviderTypeform, nil, data, h, other) == nil {
			t.Errorf("event %d's signature verifies event %d too", seq, seq+1)
		}
	}
	if got := sigs.late.Load(); got != 2 {
		t.Errorf("%d events counted as signed late, want 2 (%d and %d; negative ones are not measured)", got, n, n+7)
	}

	none, err := presign(0, sign)
	if err != nil || none.value(5) != sign(5) || none.late.Load() != 1 {
		t.Errorf("presign(0): err %v, late %d; want every event signed when sent and counted", err, none.late.Load())
	}

	_, err = presign(10, func(seq int64) string { return strings.Repeat("x", int(seq%3)+1) })
	if err == nil || !strings.Contains(err.Error(), "one width") {
		t.Errorf("signatures of different widths: err %v, want one naming the width", err)
	}
}

func TestDecimalLen(t *testing.T) {
	for _, n := range []int64{0, 1, 9, 10, 99, 100, 12345, -1, -9, -10, -12345, 1<<63 - 1, -1 << 63} {
		if got, want := decimalLen(n), len(strconv.FormatInt(n, 10)); got != want {
			t.Errorf("decimalLen(%d) = %d, want %d", n, got, want)
		}
	}
}
