package measure

import (
	"context"
	"errors"
	"time"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// ErrNoData means a source answered but holds no responses for a variant and
// segment. Callers must treat it as "no evidence", never as a score.
var ErrNoData = errors.New("no satisfaction data")

// Tallies holds counts of responses: Tallies[segment][variant][i] is the
// number of responses with score ScoreMin+i. A missing entry means no data.
type Tallies map[string]map[string][]int64

// Get returns the counts of one variant in one segment, or nil.
func (t Tallies) Get(segment, variant string) []int64 {
	if t == nil {
		return nil
	}
	return t[segment][variant]
}

// Set stores the counts of one variant in one segment.
func (t Tallies) Set(segment, variant string, counts []int64) {
	if t[segment] == nil {
		t[segment] = map[string][]int64{}
	}
	t[segment][variant] = counts
}

// EpochTallies splits counts by allocation epoch:
// EpochTallies[segment][epoch][variant][i] is the number of responses with
// score ScoreMin+i of customers served in that epoch. Epoch 0 holds counts
// that carry no epoch (recorded before the run had epochs).
type EpochTallies map[string]map[int32]map[string][]int64

// Get returns the counts of one variant in one epoch of one segment, or nil.
func (t EpochTallies) Get(segment string, epoch int32, variant string) []int64 {
	if t == nil {
		return nil
	}
	return t[segment][epoch][variant]
}

// Add adds counts to one variant in one epoch of one segment.
func (t EpochTallies) Add(segment string, epoch int32, variant string, counts []int64) {
	if t[segment] == nil {
		t[segment] = map[int32]map[string][]int64{}
	}
	if t[segment][epoch] == nil {
		t[segment][epoch] = map[string][]int64{}
	}
	cur := t[segment][epoch][variant]
	if len(cur) < len(counts) {
		cur = append(cur, make([]int64, len(counts)-len(cur))...)
	}
	for i, c := range counts {
		cur[i] += c
	}
	t[segment][epoch][variant] = cur
}

// EpochWindow is the time span of one allocation epoch of a segment, for
// sources that read by time (Prometheus): responses of customers served
// from Start until End (zero: now).
type EpochWindow struct {
	Epoch      int32
	Start, End time.Time
}

// Query says what to read.
type Query struct {
	// Experiment is the experiment being measured (namespace, name, status.run).
	Experiment *cxv1.CXExperiment
	// Settings is spec.satisfaction with defaults applied (the scale).
	Settings cxv1.SatisfactionSettings
	// Segments and Variants to read (segment "all" when the experiment has none).
	Segments []string
	Variants []string
	// Window is the time since the run started (for Prometheus range functions).
	Window time.Duration
	// Epochs are each segment's allocation epochs, oldest first; a segment
	// without epochs (a run that started before epochs were recorded) is
	// read as one span since the run started.
	Epochs map[string][]EpochWindow
	// Now is the time of the reading (the reconcile's clock).
	Now time.Time
}

// Result is what a source read.
type Result struct {
	// Tallies holds the counts of the whole run found; variants/segments
	// without data are absent.
	Tallies Tallies
	// Epochs splits Tallies by allocation epoch (their sum per segment and
	// variant is Tallies).
	Epochs EpochTallies
	// LastResponseAt is when the newest counted response was committed, when
	// the source knows it (the collector does). It times rollback latency.
	LastResponseAt time.Time
	// Missing lists "segment/variant" pairs that had no data (ErrNoData).
	Missing []string
}

// Source reads tallies for an experiment.
type Source interface {
	// Tallies reads the responses of every variant in every segment of q.
	// A pair without data is listed in Result.Missing, not returned as an
	// error; an error means the source could not be read at all.
	Tallies(ctx context.Context, q Query) (Result, error)
}

// GuardrailQuery asks for one guardrail value of one variant in one segment.
type GuardrailQuery struct {
	Experiment *cxv1.CXExperiment
	Guardrail  *cxv1.Guardrail
	Segment    string
	Variant    string
	Window     time.Duration
	// BearerToken is the token read from Guardrail.Prometheus.BearerTokenSecretRef, if any.
	BearerToken string
}

// GuardrailReader reads technical guardrail values.
type GuardrailReader interface {
	// Value returns the guardrail's current value, or ErrNoData.
	Value(ctx context.Context, q GuardrailQuery) (float64, error)
}
