//go:build bench

package stats

import (
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/rapport-dev/rapport/internal/analysis"
	rs "github.com/rapport-dev/rapport/internal/rolloutsim"
)

const (
	defaultRuns = 2000
	defaultSeed = 20261201
	lookEvery   = 10 // responses of a segment between looks
	// replayRuns runs of every case are played a second time, alone, and
	// must give the same outcome: figures depend on the seed only.
	replayRuns = 2
	command    = "go test -tags bench ./test/bench/stats/ -run TestStatistics -v -timeout 300m"
)

// suite is one generation of the report.
type suite struct {
	runs     int
	seed     uint64
	targets  []target
	sections map[string]string
	before   []beforeAfter
	// results shared between sections.
	fromStart8 int64 // median responses per arm to roll back an 8-point drop from the start (balanced)
}

// sectionOrder is the order of the report; every section is a subtest.
var sectionOrder = []struct {
	id  string
	run func(*suite, *testing.T) string
}{
	{"Margin", (*suite).margin},
	{"Drift", (*suite).drift},
	{"Segments", (*suite).segments},
	{"Late", (*suite).late},
	{"LongRun", (*suite).longRun},
	{"SampleRatio", (*suite).sampleRatio},
	{"Planner", (*suite).planner},
	{"Thresholds", (*suite).thresholds},
}

// TestStatistics plays every case of the report, checks every target, and
// writes the report to BENCH_OUT when set (all sections must have run).
func TestStatistics(t *testing.T) {
	s := &suite{
		runs:     int(envUint(t, "BENCH_RUNS", defaultRuns)),
		seed:     envUint(t, "BENCH_SEED", defaultSeed),
		sections: map[string]string{},
	}
	start := time.Now()
	for _, sec := range sectionOrder {
		t.Run(sec.id, func(t *testing.T) {
			began := time.Now()
			md := sec.run(s, t)
			s.sections[sec.id] = md
			fmt.Printf("\n%s\n", md)
			t.Logf("section %s: %v", sec.id, time.Since(began).Round(time.Second))
		})
	}
	report := s.render()
	fmt.Printf("\n%s\n%s\n", s.renderTargets(), s.renderBefore())
	t.Logf("%d runs per case, seed %d, %v on GOMAXPROCS=%d", s.runs, s.seed,
		time.Since(start).Round(time.Second), runtime.GOMAXPROCS(0))
	out := os.Getenv("BENCH_OUT")
	if out == "" {
		return
	}
	if len(s.sections) != len(sectionOrder) {
		t.Fatalf("BENCH_OUT=%s: only %d of %d sections ran (do not filter with -run when writing the report)",
			out, len(s.sections), len(sectionOrder))
	}
	path, err := outPath(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(report), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", path)
}

// target is one figure the issue sets a bound on.
type target struct {
	section, what string
	measured      string
	limit         string
	pass          bool
}

// check records a target and fails the (sub)test when it is missed.
func (s *suite) check(t *testing.T, section, what, measured, limit string, pass bool) {
	t.Helper()
	s.targets = append(s.targets, target{section, what, measured, limit, pass})
	if pass {
		t.Logf("target met: %s: %s (%s)", what, measured, limit)
	} else {
		t.Errorf("target missed: %s: %s (%s)", what, measured, limit)
	}
}

// rateAtMost checks that a rate is at most limit percent: the observed rate
// decides; its 95% Clopper-Pearson interval is printed next to it.
func (s *suite) rateAtMost(t *testing.T, section, what string, r rs.Rate, limit float64) bool {
	t.Helper()
	pass := r.Value() <= limit
	s.check(t, section, what, r.String(), fmt.Sprintf("≤ %g%%", limit), pass)
	return pass
}

func (s *suite) rateAtLeast(t *testing.T, section, what string, r rs.Rate, limit float64) bool {
	t.Helper()
	pass := r.Value() >= limit
	s.check(t, section, what, r.String(), fmt.Sprintf("≥ %g%%", limit), pass)
	return pass
}

// beforeAfter is one row of the before/after table: a figure of the
// previous engine from the audit in issue 12, next to this suite's.
type beforeAfter struct {
	// number is the audit's finding (1..5 in issue 12), which orders the table.
	number                 int
	finding, before, after string
}

func (s *suite) compare(number int, finding, before, after string) {
	s.before = append(s.before, beforeAfter{number, finding, before, after})
}

// seedFor derives a case's seed from the suite's seed and the case's name,
// so adding or reordering cases changes no other case's figures.
func (s *suite) seedFor(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return s.seed ^ h.Sum64()
}

// play runs runs runs of sc (seeded with name unless it has a seed) with a fresh observer state
// per run (newState and look may be nil), replays the first runs alone to
// check that the figures depend on the seed only, and logs the time taken.
func play[S any](t *testing.T, s *suite, name string, sc *rs.Scenario, newState func(run int) *S,
	look func(st *S, l *rs.Look) bool) ([]rs.Outcome, []*S) {
	t.Helper()
	if sc.Seed == 0 {
		sc.Seed = s.seedFor(name)
	}
	var states []*S
	if newState != nil {
		sc.Observe = func(run int) func(*rs.Look) bool {
			st := newState(run)
			states[run] = st
			return func(l *rs.Look) bool { return look(st, l) }
		}
	}
	began := time.Now()
	states = make([]*S, s.runs)
	outs, err := rs.Run(sc, s.runs)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	first := states
	states = make([]*S, s.runs)
	again, err := rs.Run(sc, min(replayRuns, s.runs))
	if err != nil {
		t.Fatalf("%s: replay: %v", name, err)
	}
	for i := range again {
		if !reflect.DeepEqual(again[i], outs[i]) || !reflect.DeepEqual(states[i], first[i]) {
			t.Fatalf("%s: run %d is not reproducible", name, i)
		}
	}
	looks := 0
	for _, o := range outs {
		looks += o.Looks
	}
	t.Logf("%s: %d runs, %d looks, %v", name, s.runs, looks, time.Since(began).Round(time.Millisecond))
	return outs, first
}

// counts are the outcomes of a case's runs.
type counts struct {
	runs int
	// Ever called Inferior / NonInferior: per segment and variant, per
	// segment (any of its variants), per run (anywhere in the experiment).
	inferior, segInferior, anyInferior          rs.Rate
	nonInferior, segNonInferior, anyNonInferior rs.Rate
	// Responses of the variant at its first Inferior / NonInferior.
	inferiorAt, nonInferiorAt []int64
	// byRule counts first Inferior verdicts per rule.
	byRule map[analysis.Rule]int
	// Sample-ratio mismatch: per segment, per run; responses of the segment
	// (customers served) at the first one.
	mismatch, anyMismatch rs.Rate
	mismatchAt            []int64
}

func countOutcomes(outs []rs.Outcome) counts {
	c := counts{runs: len(outs), byRule: map[analysis.Rule]int{}}
	hit := func(r *rs.Rate, b bool) {
		r.N++
		if b {
			r.Count++
		}
	}
	for _, o := range outs {
		anyI, anyN, anyM := false, false, false
		for _, so := range o.Segments {
			segI, segN := false, false
			for _, vo := range so.Variants {
				hit(&c.inferior, vo.Inferior.Happened())
				hit(&c.nonInferior, vo.NonInferior.Happened())
				if vo.Inferior.Happened() {
					segI = true
					c.inferiorAt = append(c.inferiorAt, vo.Inferior.Responses)
					c.byRule[vo.Inferior.Rule]++
				}
				if vo.NonInferior.Happened() {
					segN = true
					c.nonInferiorAt = append(c.nonInferiorAt, vo.NonInferior.Responses)
				}
			}
			hit(&c.segInferior, segI)
			hit(&c.segNonInferior, segN)
			hit(&c.mismatch, so.Mismatch.Happened())
			if so.Mismatch.Happened() {
				c.mismatchAt = append(c.mismatchAt, so.Mismatch.At)
				anyM = true
			}
			anyI, anyN = anyI || segI, anyN || segN
		}
		hit(&c.anyInferior, anyI)
		hit(&c.anyNonInferior, anyN)
		hit(&c.anyMismatch, anyM)
	}
	return c
}

// Configurations and scenarios.

func csat(maxDrop float64, segments int) analysis.Config {
	return analysis.Config{Metric: analysis.CSAT, ScaleMin: 1, ScaleMax: 5, SatisfiedAtOrAbove: 4,
		MaxDrop: maxDrop, Confidence: 0.95, MinResponses: 100, Segments: segments}
}

func nps(maxDrop float64, segments int) analysis.Config {
	return analysis.Config{Metric: analysis.NPS, ScaleMin: 0, ScaleMax: 10,
		MaxDrop: maxDrop, Confidence: 0.95, MinResponses: 100, Segments: segments}
}

// variantNames are v1..vk.
func variantNames(k int) []string {
	out := make([]string, k)
	for i := range out {
		out[i] = "v" + strconv.Itoa(i+1)
	}
	return out
}

// scenario is segments segments, each with a control and variants at the
// given truths, at constant step weights, judged at every look until the
// horizon whatever was called before, traffic unchanged by verdicts: the
// share of runs with a call ever made is the strictest error rate.
func scenario(cfg analysis.Config, steps []int32, stepResponses, horizon int64, ctl rs.Truth, variants ...rs.Truth) *rs.Scenario {
	sc := &rs.Scenario{Config: cfg, Control: "control", Variants: variantNames(len(variants)),
		Steps: steps, StepResponses: stepResponses, Horizon: horizon, LookEvery: lookEvery,
		KeepJudging: true, ChangeNoWeights: true}
	for i := range cfg.Segments {
		arms := map[string]rs.Arm{"control": {Truth: ctl}}
		for k, v := range variants {
			arms[sc.Variants[k]] = rs.Arm{Truth: v}
		}
		sc.Segments = append(sc.Segments, rs.Segment{Name: "s" + strconv.Itoa(i+1), Arms: arms})
	}
	return sc
}

// constant is scenario with one weight and constant truths.
func constant(cfg analysis.Config, weight int32, horizon int64, ctl rs.Shares, variants ...rs.Shares) *rs.Scenario {
	vs := make([]rs.Truth, len(variants))
	for i, v := range variants {
		vs[i] = rs.Constant(v)
	}
	return scenario(cfg, []int32{weight}, 1<<40, horizon, rs.Constant(ctl), vs...)
}

// repeat is k copies of x.
func repeat[T any](x T, k int) []T {
	out := make([]T, k)
	for i := range out {
		out[i] = x
	}
	return out
}

func envUint(t *testing.T, name string, def uint64) uint64 {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n == 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// outPath resolves a relative BENCH_OUT against the module root: go test runs
// in the package directory, but the documented paths are from the root.
func outPath(p string) (string, error) {
	if filepath.IsAbs(p) {
		return p, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(d, p), nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("BENCH_OUT=%s: no go.mod above %s", p, dir)
		}
	}
}

// median and p90 of responses, nearest rank over all runs (a run without a
// value counts as never: -1 when fewer than that share have one).
func quantile(xs []int64, n int, q float64) int64 { return rs.Quantile(xs, n, q) }
