package sim

import (
	"math"
	"testing"
)

func f(x float64) *float64 { return &x }

func scenario() *Scenario {
	return &Scenario{Rate: 100, Seed: 7, Segments: map[string]SegmentScenario{
		"enterprise": {Share: 1, Variants: map[string]Distribution{
			"control":  {Satisfied: f(86)},
			"one-page": {Satisfied: f(86), After: 1000, Then: &Distribution{Satisfied: f(70)}},
		}},
		"new": {Share: 3, Variants: map[string]Distribution{"control": {Satisfied: f(80)}}},
	}}
}

var csat = Scale{Min: 1, Max: 5, SatisfiedAtOrAbove: 4}

func TestDrawerFollowsShares(t *testing.T) {
	d := NewDrawer(scenario(), csat, "control")
	n := map[string]int{}
	for range 40000 {
		n[d.Segment()]++
	}
	if got := float64(n["new"]) / 40000; math.Abs(got-0.75) > 0.01 {
		t.Fatalf("share of new = %.3f, want 0.75", got)
	}
}

func TestDrawerFollowsWeights(t *testing.T) {
	d := NewDrawer(scenario(), csat, "control")
	n := map[string]int{}
	for range 40000 {
		n[d.Variant(map[string]int32{"control": 75, "one-page": 25})]++
	}
	if got := float64(n["one-page"]) / 40000; math.Abs(got-0.25) > 0.01 {
		t.Fatalf("share of one-page = %.3f, want 0.25", got)
	}
	if v := d.Variant(map[string]int32{"control": 0, "one-page": 0}); v != "control" {
		t.Fatalf("no weights picks %q, want the control", v)
	}
}

func TestDrawerScoresAndDrop(t *testing.T) {
	d := NewDrawer(scenario(), csat, "control")
	sat := func(variant string, n int) float64 {
		s := 0
		for range n {
			score := d.Score("enterprise", variant)
			if score < 1 || score > 5 {
				t.Fatalf("score %d outside 1..5", score)
			}
			if score >= 4 {
				s++
			}
		}
		return 100 * float64(s) / float64(n)
	}
	if got := sat("one-page", 1000); math.Abs(got-86) > 3.5 {
		t.Fatalf("CSAT before the drop = %.1f, want about 86", got)
	}
	if got := sat("one-page", 4000); math.Abs(got-70) > 2.5 {
		t.Fatalf("CSAT after the drop = %.1f, want about 70", got)
	}
	if got := sat("two-page", 4000); math.Abs(got-86) > 2.5 {
		t.Fatalf("an unlisted variant answers like the control: CSAT %.1f, want about 86", got)
	}
}

func TestDrawerNPS(t *testing.T) {
	s := &Scenario{Rate: 1, Seed: 1, Segments: map[string]SegmentScenario{"all": {Share: 1, Variants: map[string]Distribution{
		"control": {Promoters: f(50), Detractors: f(15)},
	}}}}
	d := NewDrawer(s, Scale{NPS: true, Min: 0, Max: 10}, "control")
	var p, q int
	for range 20000 {
		switch sc := d.Score("all", "control"); {
		case sc >= 9:
			p++
		case sc <= 6:
			q++
		}
	}
	nps := 100 * float64(p-q) / 20000
	if math.Abs(nps-35) > 2 {
		t.Fatalf("NPS = %.1f, want about 35", nps)
	}
}

func TestDeterministic(t *testing.T) {
	a, b := NewDrawer(scenario(), csat, "control"), NewDrawer(scenario(), csat, "control")
	w := map[string]map[string]int32{"enterprise": {"control": 50, "one-page": 50}, "new": {"control": 100}}
	for range 1000 {
		if x, y := a.Draw(w), b.Draw(w); x != y {
			t.Fatalf("same seed drew %v and %v", x, y)
		}
	}
}

func TestScenarioValidate(t *testing.T) {
	tests := []struct {
		name string
		s    Scenario
		ok   bool
	}{
		{"valid", *scenario(), true},
		{"no rate", Scenario{Segments: scenario().Segments}, false},
		{"no segments", Scenario{Rate: 1}, false},
		{"negative share", Scenario{Rate: 1, Segments: map[string]SegmentScenario{"a": {Share: -1}}}, false},
		{"satisfied over 100", Scenario{Rate: 1, Segments: map[string]SegmentScenario{"a": {Share: 1, Variants: map[string]Distribution{"control": {Satisfied: f(120)}}}}}, false},
		{"no distribution", Scenario{Rate: 1, Segments: map[string]SegmentScenario{"a": {Share: 1, Variants: map[string]Distribution{"control": {}}}}}, false},
		{"NPS shares over 100", Scenario{Rate: 1, Segments: map[string]SegmentScenario{"a": {Share: 1, Variants: map[string]Distribution{"control": {Promoters: f(70), Detractors: f(40)}}}}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.s.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
