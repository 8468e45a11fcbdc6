package history

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

func status(measured time.Time, verdict cxv1.Verdict, weight int32) *cxv1.CXExperimentStatus {
	at := metav1.NewTime(measured)
	return &cxv1.CXExperimentStatus{
		Run: 1, Phase: cxv1.PhaseProgressing, CurrentStep: 1, MeasuredAt: &at,
		Segments: []cxv1.SegmentStatus{{Name: "enterprise", Epoch: 1, Variants: []cxv1.VariantStatus{
			{Name: "control", State: cxv1.StateActive, Weight: 100 - weight, Responses: 90, Score: "86.0"},
			{Name: "one-page", State: cxv1.StateActive, Weight: weight, Responses: 10, Score: "74.1",
				Difference: "-11.9", DifferenceInterval: "[-20.3, -3.5]", Verdict: verdict},
		}}},
	}
}

func TestDue(t *testing.T) {
	base := status(t0, cxv1.VerdictInconclusive, 10)
	tests := []struct {
		name  string
		after func() *cxv1.CXExperimentStatus
		want  bool
	}{
		{"nothing changed (a held-back collector commit)", func() *cxv1.CXExperimentStatus { return base.DeepCopy() }, false},
		{"measurement recorded", func() *cxv1.CXExperimentStatus { return status(t0.Add(30*time.Second), cxv1.VerdictInconclusive, 10) }, true},
		{"verdict changed", func() *cxv1.CXExperimentStatus { return status(t0, cxv1.VerdictInferior, 10) }, true},
		{"weight changed", func() *cxv1.CXExperimentStatus { return status(t0, cxv1.VerdictInconclusive, 0) }, true},
		{"step changed", func() *cxv1.CXExperimentStatus { s := base.DeepCopy(); s.CurrentStep = 2; return s }, true},
		{"phase changed", func() *cxv1.CXExperimentStatus { s := base.DeepCopy(); s.Phase = cxv1.PhasePaused; return s }, true},
		{"state changed", func() *cxv1.CXExperimentStatus {
			s := base.DeepCopy()
			s.Segments[0].Variants[1].State = cxv1.StateRolledBack
			return s
		}, true},
		{"no segments yet", func() *cxv1.CXExperimentStatus { return &cxv1.CXExperimentStatus{Run: 1} }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Due(base, tt.after()); got != tt.want {
				t.Errorf("Due = %v, want %v", got, tt.want)
			}
		})
	}
}

func pts(spec string) []Point {
	// spec: one letter per point, the verdict's initial; weights follow verdicts.
	ps := make([]Point, len(spec))
	for i, c := range spec {
		v := map[rune]cxv1.Verdict{'i': cxv1.VerdictInconclusive, 'n': cxv1.VerdictNonInferior, 'x': cxv1.VerdictInferior}[c]
		w := int32(10)
		if c == 'x' {
			w = 0
		}
		ps[i] = Point{At: int64(i), Verdict: v, Weight: w}
	}
	return ps
}

func times(ps []Point) []int64 {
	out := make([]int64, len(ps))
	for i, p := range ps {
		out[i] = p.At
	}
	return out
}

func TestThin(t *testing.T) {
	tests := []struct {
		name string
		in   []Point
		want []int64
	}{
		{"short series unchanged", pts("ii"), []int64{0, 1}},
		{"every other point, first and last kept", pts("iiiiiii"), []int64{0, 2, 4, 6}},
		{"verdict and weight changes kept", pts("iiiiixxxx"), []int64{0, 2, 4, 5, 7, 8}},
		{"change and change back kept", pts("iixiiiii"), []int64{0, 2, 3, 4, 6, 7}},
		{"all changes: every other point", pts("ixixixix"), []int64{0, 2, 4, 6, 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := times(Thin(tt.in))
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("Thin = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestAppendBoundsAndKeepsTheDecision(t *testing.T) {
	var h *History
	const n = 5000
	for i := range n {
		v, w := cxv1.VerdictInconclusive, int32(10)
		if i >= 4321 {
			v, w = cxv1.VerdictInferior, 0 // the rollback
		}
		h = Append(h, "checkout", status(t0, v, w), t0.Add(time.Duration(i)*time.Minute))
	}
	if len(h.Series) != 2 {
		t.Fatalf("series = %d, want 2 (control and one-page)", len(h.Series))
	}
	for _, s := range h.Series {
		if len(s.Points) > MaxPoints || len(s.Points) < MaxPoints/2 {
			t.Errorf("%s/%s: %d points, want %d..%d", s.Segment, s.Variant, len(s.Points), MaxPoints/2, MaxPoints)
		}
		if first := s.Points[0].Time(); !first.Equal(t0) {
			t.Errorf("%s: first point at %v, want %v", s.Variant, first, t0)
		}
		if last := s.Points[len(s.Points)-1].Time(); !last.Equal(t0.Add((n - 1) * time.Minute)) {
			t.Errorf("%s: last point at %v", s.Variant, last)
		}
		for i := 1; i < len(s.Points); i++ {
			if s.Points[i].At <= s.Points[i-1].At {
				t.Fatalf("%s: points out of order at %d", s.Variant, i)
			}
		}
	}
	sr := h.Find("enterprise", "one-page")
	found := false
	for _, p := range sr.Points {
		if p.Time().Equal(t0.Add(4321*time.Minute)) && p.Verdict == cxv1.VerdictInferior && p.Weight == 0 {
			found = true
		}
	}
	if !found {
		t.Errorf("the point of the rollback (verdict Inferior, weight 0 at minute 4321) was thinned away")
	}
	if p := sr.Points[0]; p.Difference == nil || *p.Difference != -11.9 || *p.Lower != -20.3 || *p.Upper != -3.5 || p.Epoch != 1 || p.Step != 1 {
		t.Errorf("first point = %+v, want difference -11.9 in [-20.3, -3.5], epoch 1, step 1", p)
	}
	if p := h.Find("enterprise", "control").Points[0]; p.Difference != nil || p.Score == nil || *p.Score != 86 {
		t.Errorf("control point = %+v, want score 86 and no difference", p)
	}
}

func TestAppendStartsOverForANewRun(t *testing.T) {
	h := Append(nil, "checkout", status(t0, cxv1.VerdictInconclusive, 10), t0)
	st := status(t0, cxv1.VerdictInconclusive, 10)
	st.Run = 2
	h2 := Append(h, "checkout", st, t0.Add(time.Hour))
	if h2.Run != 2 || len(h2.Find("enterprise", "one-page").Points) != 1 {
		t.Errorf("history of run 2 = run %d with %d points, want run 2 with 1 point", h2.Run, len(h2.Find("enterprise", "one-page").Points))
	}
	// Two reconciles at one instant keep one point, the newer, unless the
	// verdict or the weight changed: a change is never folded away.
	st3 := status(t0, cxv1.VerdictInconclusive, 10)
	st3.Run, st3.Segments[0].Variants[1].Responses = 2, 11
	h3 := Append(h2, "checkout", st3, t0.Add(time.Hour))
	if got := h3.Find("enterprise", "one-page").Points; len(got) != 1 || got[0].Responses != 11 {
		t.Errorf("points = %+v, want the newer only", got)
	}
	st4 := status(t0, cxv1.VerdictInferior, 0)
	st4.Run = 2
	h4 := Append(h3, "checkout", st4, t0.Add(time.Hour))
	if got := h4.Find("enterprise", "one-page").Points; len(got) != 2 || got[1].Verdict != cxv1.VerdictInferior || got[0].Verdict != cxv1.VerdictInconclusive {
		t.Errorf("points = %+v, want the change kept as a second point", got)
	}
}

func TestEncodeDecode(t *testing.T) {
	h := Append(nil, "checkout", status(t0, cxv1.VerdictInconclusive, 10), t0)
	b, err := Encode(h)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, h) {
		t.Errorf("round trip changed the history:\n got %+v\nwant %+v", got, h)
	}
	for _, tt := range []struct {
		name string
		in   []byte
		want string
	}{
		{"not gzip", []byte("{}"), "not gzip"},
		{"other version", mustEncode(t, &History{Version: 99}), "format version 99"},
		{"ragged columns", gz(t, `{"version":1,"series":[{"segment":"a","variant":"b","atDelta":[1],"step":[]}]}`), "columns of different lengths"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Decode(tt.in); err == nil || !contains(err.Error(), tt.want) {
				t.Errorf("Decode error = %v, want one saying %q", err, tt.want)
			}
		})
	}
}

func mustEncode(t *testing.T, h *History) []byte {
	t.Helper()
	b, err := Encode(h)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func contains(s, sub string) bool {
	return len(sub) == 0 || (len(s) >= len(sub) && indexOf(s, sub) >= 0)
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

// TestSizeAtTheBound encodes the largest history (8 variants x 16 segments x
// MaxPoints points, with noisy seeded figures that compress badly) and
// checks it stays well under the 1 MiB a ConfigMap may hold, counting the
// base64 of binaryData.
func TestSizeAtTheBound(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 1))
	h := &History{Version: Version, Experiment: "checkout", Run: 1}
	verdicts := []cxv1.Verdict{cxv1.VerdictInsufficientData, cxv1.VerdictInconclusive, cxv1.VerdictNonInferior}
	for s := range 16 {
		for v := range 8 {
			sr := Series{Segment: fmt.Sprintf("segment-%02d", s), Variant: fmt.Sprintf("variant-%d", v)}
			var n int64
			weight, verdict := int32(rng.IntN(100)), verdicts[rng.IntN(len(verdicts))]
			for i := range MaxPoints {
				if i%40 == 0 { // weights change at steps, verdicts now and then
					weight = int32(rng.IntN(100))
				}
				if rng.IntN(20) == 0 {
					verdict = verdicts[rng.IntN(len(verdicts))]
				}
				n += int64(rng.IntN(400))
				sc := float64(700+rng.IntN(250)) / 10
				p := Point{At: t0.Add(time.Duration(i*47+rng.IntN(30))*time.Second + time.Duration(rng.IntN(1000))*time.Millisecond).UnixMilli(), Step: int32(1 + i/40), Epoch: int32(1 + i/40),
					Responses: n, Score: &sc, Weight: weight, Verdict: verdict}
				if v > 0 {
					d, lo, hi := float64(rng.IntN(200)-100)/10, float64(rng.IntN(200)-300)/10, float64(rng.IntN(200)+100)/10
					p.Difference, p.Lower, p.Upper = &d, &lo, &hi
				}
				sr.Points = append(sr.Points, p)
			}
			h.Series = append(h.Series, sr)
		}
	}
	b := mustEncode(t, h)
	stored := (len(b) + 2) / 3 * 4 // base64 in the ConfigMap's JSON
	t.Logf("8 variants x 16 segments x %d points: %d bytes gzip, %d bytes as base64 in binaryData (limit 1048576)", MaxPoints, len(b), stored)
	if stored > 1<<20/2 {
		t.Errorf("history at its bound is %d bytes stored, want under half of 1 MiB", stored)
	}
}

func gz(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	_, _ = zw.Write([]byte(s))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
