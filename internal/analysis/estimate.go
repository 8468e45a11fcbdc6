package analysis

import "fmt"

// Arm is the tally of one arm: Counts[i] is the number of responses with
// score ScaleMin+i.
type Arm struct {
	Name   string
	Counts []int64
}

// Estimate is one arm's score.
type Estimate struct {
	Responses int64
	// Score is the plain estimate (share satisfied, or % promoters - %
	// detractors), in points; 0 when there are no responses.
	Score float64
}

// EstimateArm returns the score of one arm (for summaries; verdicts come from
// Evaluate).
func EstimateArm(cfg Config, arm Arm) (Estimate, error) {
	if cfg.Segments == 0 {
		cfg.Segments = 1 // a score needs no error budget
	}
	e, err := NewEngine(cfg)
	if err != nil {
		return Estimate{}, err
	}
	if err := checkCounts(arm.Name, 0, arm.Counts, cfg.ScaleMax-cfg.ScaleMin+1, cfg); err != nil {
		return Estimate{}, fmt.Errorf("%w", err)
	}
	cats := make([]int64, len(e.values))
	n := e.collapse(arm.Counts, cats)
	return Estimate{Responses: n, Score: 100 * e.mean(cats, n)}, nil
}
