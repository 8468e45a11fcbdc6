package sim

import (
	"math/rand/v2"
	"sort"
	"time"
)

// Scale says what scores look like.
type Scale struct {
	NPS                bool
	Min, Max           int // CSAT 1..Max; NPS 0..10
	SatisfiedAtOrAbove int
}

// Answer is one simulated response.
type Answer struct {
	Segment, Variant string
	Score            int
	// At is when the customer was served (zero: unknown, the collector then
	// uses the commit time).
	At time.Time
}

// Drawer draws answers. It is deterministic for a seed.
type Drawer struct {
	rnd      *rand.Rand
	scenario *Scenario
	scale    Scale
	control  string
	// counts of responses drawn per segment/variant, for Distribution.After.
	counts map[string]int64
}

// NewDrawer returns a Drawer for a scenario.
func NewDrawer(s *Scenario, scale Scale, control string) *Drawer {
	return &Drawer{rnd: rand.New(rand.NewPCG(s.Seed, 0x5eed)), scenario: s, scale: scale, control: control, counts: map[string]int64{}}
}

// Segment picks a segment by share.
func (d *Drawer) Segment() string {
	names := d.scenario.segmentNames()
	var total float64
	for _, n := range names {
		total += d.scenario.Segments[n].Share
	}
	x := d.rnd.Float64() * total
	for _, n := range names {
		x -= d.scenario.Segments[n].Share
		if x < 0 {
			return n
		}
	}
	return names[len(names)-1]
}

// Variant picks a variant by weights (percent); variants are tried in name order.
func (d *Drawer) Variant(weights map[string]int32) string {
	names := make([]string, 0, len(weights))
	var total int32
	for n, w := range weights {
		if w > 0 {
			names = append(names, n)
			total += w
		}
	}
	if total == 0 {
		return d.control
	}
	sort.Strings(names)
	x := d.rnd.Int32N(total)
	for _, n := range names {
		x -= weights[n]
		if x < 0 {
			return n
		}
	}
	return names[len(names)-1]
}

// distribution returns the distribution in force for a variant in a segment.
func (d *Drawer) distribution(segment, variant string) Distribution {
	seg := d.scenario.Segments[segment]
	dist, ok := seg.Variants[variant]
	if !ok {
		dist = seg.Variants[d.control]
	}
	n := d.counts[segment+"/"+variant]
	for dist.Then != nil && n >= dist.After {
		n -= dist.After
		dist = *dist.Then
	}
	return dist
}

// Score draws one score for a variant in a segment.
func (d *Drawer) Score(segment, variant string) int {
	dist := d.distribution(segment, variant)
	d.counts[segment+"/"+variant]++
	x := d.rnd.Float64() * 100
	if d.scale.NPS {
		p, q := 50.0, 15.0
		if dist.Promoters != nil {
			p = *dist.Promoters
		}
		if dist.Detractors != nil {
			q = *dist.Detractors
		}
		switch {
		case x < p:
			return 9 + d.rnd.IntN(2)
		case x < p+q:
			return d.rnd.IntN(7)
		default:
			return 7 + d.rnd.IntN(2)
		}
	}
	satisfied := 85.0
	if dist.Satisfied != nil {
		satisfied = *dist.Satisfied
	}
	if x < satisfied {
		return d.scale.SatisfiedAtOrAbove + d.rnd.IntN(d.scale.Max-d.scale.SatisfiedAtOrAbove+1)
	}
	return d.scale.Min + d.rnd.IntN(d.scale.SatisfiedAtOrAbove-d.scale.Min)
}

// Draw returns one answer given the live weights per segment.
func (d *Drawer) Draw(weights map[string]map[string]int32) Answer {
	seg := d.Segment()
	v := d.Variant(weights[seg])
	return Answer{Segment: seg, Variant: v, Score: d.Score(seg, v)}
}
