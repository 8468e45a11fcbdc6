package sim

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"time"

	"sigs.k8s.io/yaml"
)

// Scenario describes simulated customers.
//
//	rate: 500                 # responses per second, all segments together
//	batch: 50                 # responses per collector request
//	seed: 1
//	segments:
//	  enterprise:
//	    share: 0.5            # of all customers (shares are normalised)
//	    variants:
//	      control:  {satisfied: 86}
//	      one-page: {satisfied: 86, after: 200, then: {satisfied: 72}}
//	  new-customers:
//	    share: 0.5
//	    variants:
//	      control:  {satisfied: 84}
//	      one-page: {satisfied: 85}
//
// For CSAT, satisfied is the percentage of responses at or above the
// satisfied score; for NPS, give promoters and detractors (percent).
// A variant not listed answers like the control of its segment.
type Scenario struct {
	Rate     float64                    `json:"rate"`
	Batch    int                        `json:"batch"`
	Seed     uint64                     `json:"seed"`
	Segments map[string]SegmentScenario `json:"segments"`
}

// SegmentScenario is one segment's customers.
type SegmentScenario struct {
	Share    float64                 `json:"share"`
	Variants map[string]Distribution `json:"variants"`
}

// Distribution is how customers of one variant answer.
type Distribution struct {
	// Satisfied is the CSAT percentage (share of satisfied scores).
	Satisfied *float64 `json:"satisfied,omitempty"`
	// Promoters and Detractors are NPS percentages.
	Promoters  *float64 `json:"promoters,omitempty"`
	Detractors *float64 `json:"detractors,omitempty"`
	// After this many responses of the variant in the segment, Then applies.
	After int64         `json:"after,omitempty"`
	Then  *Distribution `json:"then,omitempty"`
}

// LoadScenario reads a YAML or JSON scenario file.
func LoadScenario(path string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s := &Scenario{}
	if err := yaml.UnmarshalStrict(data, s); err != nil {
		return nil, fmt.Errorf("scenario %s: %w", path, err)
	}
	return s, s.Validate()
}

// Validate checks the scenario and fills defaults.
func (s *Scenario) Validate() error {
	if s.Rate <= 0 {
		return errors.New("scenario: rate must be > 0 responses per second")
	}
	if s.Batch <= 0 {
		s.Batch = 50
	}
	if len(s.Segments) == 0 {
		return errors.New("scenario: give at least one segment")
	}
	for name, seg := range s.Segments {
		if seg.Share < 0 {
			return fmt.Errorf("scenario: segments.%s.share must be >= 0", name)
		}
		for v, d := range seg.Variants {
			if err := d.validate(); err != nil {
				return fmt.Errorf("scenario: segments.%s.variants.%s: %w", name, v, err)
			}
		}
	}
	return nil
}

func (d Distribution) validate() error {
	pct := func(name string, p *float64) error {
		if p != nil && (*p < 0 || *p > 100) {
			return fmt.Errorf("%s must be a percentage 0..100", name)
		}
		return nil
	}
	if d.Satisfied == nil && d.Promoters == nil {
		return errors.New("give satisfied (CSAT) or promoters and detractors (NPS)")
	}
	for _, e := range []error{pct("satisfied", d.Satisfied), pct("promoters", d.Promoters), pct("detractors", d.Detractors)} {
		if e != nil {
			return e
		}
	}
	if d.Promoters != nil && d.Detractors != nil && *d.Promoters+*d.Detractors > 100 {
		return errors.New("promoters + detractors must not exceed 100")
	}
	if d.Then != nil {
		return d.Then.validate()
	}
	return nil
}

// segmentNames returns the scenario's segments in a stable order.
func (s *Scenario) segmentNames() []string {
	out := make([]string, 0, len(s.Segments))
	for k := range s.Segments {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// interval is the time between two batches at the scenario's rate.
func (s *Scenario) interval() time.Duration {
	return time.Duration(float64(time.Second) * float64(s.Batch) / s.Rate)
}
