// Package history keeps a bounded, thinned history of an experiment run
// for its report: per segment and variant over time, the responses, the
// score, the difference to the control with its always-valid interval, the
// verdict and the weight, with the step and epoch at each point.
//
// The history is not part of the experiment's status (which every
// reconcile rewrites): the controller stores it, gzip-compressed JSON, in a
// ConfigMap owned by the experiment. This package is pure: it decides when a
// point is due, appends and thins, encodes and decodes.
package history

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// MaxPoints is the most points a series keeps. A full series is thinned:
// every other point is dropped, except the first, the last and each point
// where the verdict or the weight changed.
const MaxPoints = 200

// Version is the format version of the encoded history.
const Version = 1

// Data keys and labels of the history ConfigMap.
const (
	// Key is the binaryData key holding the gzip-compressed JSON history.
	Key = "history.json.gz"
	// RunKey is the data key holding the run the history belongs to.
	RunKey = "run"
	// NameSuffix makes the ConfigMap's name: <experiment>-history.
	NameSuffix = "-history"
)

// ConfigMapName is the name of an experiment's history ConfigMap.
func ConfigMapName(experiment string) string { return experiment + NameSuffix }

// History is the history of one run of an experiment.
type History struct {
	// Version of the format (see Version).
	Version int `json:"version"`
	// Experiment name.
	Experiment string `json:"experiment"`
	// Run of the experiment (status.run) the points belong to.
	Run int32 `json:"run"`
	// Series per segment and variant, in the order first seen.
	Series []Series `json:"-"`
}

// Series is the history of one variant in one segment.
type Series struct {
	Segment string
	Variant string
	Points  []Point
}

// Point is one observation of a variant in a segment. Values in points
// (score, difference and its interval) are nil while unknown.
type Point struct {
	// At is the time of the observation, in Unix milliseconds.
	At int64
	// Step is the 1-based rollout step (0 before the first).
	Step int32
	// Epoch is the segment's allocation epoch.
	Epoch int32
	// Responses counted for the variant in the segment during the run.
	Responses int64
	// Score in points.
	Score *float64
	// Difference to the control in points, with its interval (nil for the control).
	Difference *float64
	Lower      *float64
	Upper      *float64
	// Verdict of the decision engine ("" for the control).
	Verdict cxv1.Verdict
	// Weight is the percentage of the segment's traffic routed to the variant.
	Weight int32
}

// Time returns the point's time.
func (p Point) Time() time.Time { return time.UnixMilli(p.At).UTC() }

// Due reports whether a reconcile that moved the status from before to
// after adds a point: when it recorded a measurement (status.measuredAt
// moved, which the controller does at most once per measurement interval or
// when a verdict changed), or when a verdict, a weight, the step or the
// phase changed. Collector commits that status holds back add nothing.
func Due(before, after *cxv1.CXExperimentStatus) bool {
	if len(after.Segments) == 0 {
		return false
	}
	if !sameTime(before.MeasuredAt, after.MeasuredAt) || before.CurrentStep != after.CurrentStep ||
		before.Phase != after.Phase || before.Run != after.Run {
		return true
	}
	type key struct{ segment, variant string }
	was := map[key]cxv1.VariantStatus{}
	for _, s := range before.Segments {
		for _, v := range s.Variants {
			was[key{s.Name, v.Name}] = v
		}
	}
	for _, s := range after.Segments {
		for _, v := range s.Variants {
			b, ok := was[key{s.Name, v.Name}]
			if !ok || b.Verdict != v.Verdict || b.Weight != v.Weight || b.State != v.State {
				return true
			}
		}
	}
	return false
}

func sameTime(a, b *metav1.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(b)
}

// Append adds the status's point for every segment and variant at time now.
// A history of another run (or none) is replaced by a new one. A series at
// MaxPoints is thinned first.
func Append(h *History, experiment string, st *cxv1.CXExperimentStatus, now time.Time) *History {
	if h == nil || h.Run != st.Run || h.Experiment != experiment {
		h = &History{Version: Version, Experiment: experiment, Run: st.Run}
	}
	for _, s := range st.Segments {
		for _, v := range s.Variants {
			p := pointOf(st, &s, &v, now)
			sr := h.series(s.Name, v.Name)
			if n := len(sr.Points); n > 0 && sr.Points[n-1].At >= p.At {
				last := sr.Points[n-1]
				if last.Verdict == p.Verdict && last.Weight == p.Weight {
					// Two points at one instant: keep the newer.
					sr.Points[n-1] = p
					continue
				}
				p.At = last.At // a change is never folded away; time never runs backwards
			}
			if len(sr.Points) >= MaxPoints {
				sr.Points = Thin(sr.Points)
			}
			sr.Points = append(sr.Points, p)
		}
	}
	return h
}

func (h *History) series(segment, variant string) *Series {
	for i := range h.Series {
		if h.Series[i].Segment == segment && h.Series[i].Variant == variant {
			return &h.Series[i]
		}
	}
	h.Series = append(h.Series, Series{Segment: segment, Variant: variant})
	return &h.Series[len(h.Series)-1]
}

// Find returns the series of a variant in a segment, or nil.
func (h *History) Find(segment, variant string) *Series {
	if h == nil {
		return nil
	}
	for i := range h.Series {
		if h.Series[i].Segment == segment && h.Series[i].Variant == variant {
			return &h.Series[i]
		}
	}
	return nil
}

func pointOf(st *cxv1.CXExperimentStatus, s *cxv1.SegmentStatus, v *cxv1.VariantStatus, now time.Time) Point {
	p := Point{At: now.UnixMilli(), Step: st.CurrentStep, Epoch: s.Epoch, Responses: v.Responses,
		Verdict: v.Verdict, Weight: v.Weight}
	p.Score = points(v.Score)
	p.Difference = points(v.Difference)
	if lo, hi, err := cxv1.ParseInterval(v.DifferenceInterval); err == nil && v.DifferenceInterval != "" {
		p.Lower, p.Upper = &lo, &hi
	}
	return p
}

func points(s string) *float64 {
	if s == "" {
		return nil
	}
	x, err := cxv1.ParsePoints(s)
	if err != nil {
		return nil
	}
	return &x
}

// Thin halves a full series: it keeps the first and the last point, every
// point where the verdict or the weight changed from the point before, and
// every other one of the rest. If changes alone fill the series, it keeps
// every other point whatever they are (the first and the last still kept).
func Thin(ps []Point) []Point {
	if len(ps) <= 2 {
		return ps
	}
	out := make([]Point, 0, len(ps)/2+2)
	out = append(out, ps[0])
	drop := true
	for i := 1; i < len(ps)-1; i++ {
		changed := ps[i].Verdict != ps[i-1].Verdict || ps[i].Weight != ps[i-1].Weight
		if changed {
			out = append(out, ps[i])
			continue
		}
		if !drop {
			out = append(out, ps[i])
		}
		drop = !drop
	}
	out = append(out, ps[len(ps)-1])
	if len(out) >= len(ps) || len(out) >= MaxPoints {
		out = out[:0]
		for i := 0; i < len(ps)-1; i += 2 {
			out = append(out, ps[i])
		}
		out = append(out, ps[len(ps)-1])
	}
	return out
}

// Encode writes the history as gzip-compressed JSON.
func Encode(h *History) ([]byte, error) {
	var b bytes.Buffer
	zw, err := gzip.NewWriterLevel(&b, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if err := json.NewEncoder(zw).Encode(toWire(h)); err != nil {
		return nil, fmt.Errorf("encode history: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compress history: %w", err)
	}
	return b.Bytes(), nil
}

// maxDecoded bounds the decompressed size read back (a history at its
// bound is a few MiB of JSON).
const maxDecoded = 64 << 20

// Decode reads a history that Encode wrote.
func Decode(b []byte) (*History, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("decode history: not gzip: %w", err)
	}
	defer func() { _ = zr.Close() }()
	raw, err := io.ReadAll(io.LimitReader(zr, maxDecoded+1))
	if err != nil {
		return nil, fmt.Errorf("decode history: decompress: %w", err)
	}
	if len(raw) > maxDecoded {
		return nil, errors.New("decode history: larger than 64 MiB decompressed")
	}
	w := wire{}
	if err := json.Unmarshal(raw, &w); err != nil {
		return nil, fmt.Errorf("decode history: %w", err)
	}
	if w.Version != Version {
		return nil, fmt.Errorf("decode history: format version %d, this build reads %d", w.Version, Version)
	}
	return fromWire(&w)
}
