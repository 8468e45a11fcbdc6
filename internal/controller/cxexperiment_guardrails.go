package controller

import (
	"context"
	"errors"
	"fmt"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/measure"
	"github.com/rapport-dev/rapport/internal/rollout"
)

// guardrails reads every guardrail of every active variant in every
// segment. A breach is returned as evidence (rollout rolls the variant back).
// A guardrail without data, or that cannot be read, blocks advancement: the
// variant's NonInferior verdict is downgraded to Inconclusive, since passing
// guardrails is a condition of advancing and missing data proves nothing.
func (r *CXExperimentReconciler) guardrails(ctx context.Context, sc *scope, judgements rollout.Judgements) map[string]map[string]string {
	exp := sc.exp
	breaches := map[string]map[string]string{}
	if r.Guardrails == nil {
		return breaches
	}
	block := func(seg, variant, why string) {
		j := judgements[seg][variant]
		if j.Verdict == cxv1.VerdictNonInferior {
			j.Verdict = cxv1.VerdictInconclusive
			j.Evidence = why + " (" + j.Evidence + ")"
			judgements[seg][variant] = j
		}
	}
	for i := range exp.Spec.Guardrails {
		g := &exp.Spec.Guardrails[i]
		token, err := r.secretValue(ctx, exp.Namespace, g.Prometheus.BearerTokenSecretRef)
		for _, seg := range exp.Status.Segments {
			for _, v := range seg.Variants {
				if v.State != cxv1.StateActive {
					continue
				}
				if err != nil {
					block(seg.Name, v.Name, fmt.Sprintf("guardrail %s cannot be read: %v", g.Name, err))
					continue
				}
				value, verr := r.Guardrails.Value(ctx, measure.GuardrailQuery{
					Experiment: exp, Guardrail: g, Segment: seg.Name, Variant: v.Name,
					Window: window(exp, sc.now), BearerToken: token,
				})
				switch {
				case errors.Is(verr, measure.ErrNoData):
					block(seg.Name, v.Name, fmt.Sprintf("guardrail %s has no data yet", g.Name))
					continue
				case verr != nil:
					block(seg.Name, v.Name, fmt.Sprintf("guardrail %s cannot be read: %v", g.Name, verr))
					continue
				}
				breached, evidence, berr := rollout.Breached(*g, value)
				if berr != nil {
					block(seg.Name, v.Name, fmt.Sprintf("guardrail %s: %v", g.Name, berr))
					continue
				}
				if breached {
					if breaches[seg.Name] == nil {
						breaches[seg.Name] = map[string]string{}
					}
					if _, seen := breaches[seg.Name][v.Name]; !seen {
						breaches[seg.Name][v.Name] = evidence
					}
				}
			}
		}
	}
	return breaches
}

// holdForGuardrails keeps a variant from advancing or being promoted on a
// reconcile that did not read its guardrails: they are read once per
// spec.satisfaction.interval, and passing them is a condition of advancing.
// Without it, a NonInferior verdict between two reads (a verdict change
// moves measuredAt, and with it the next read) advanced a step whose
// guardrail had no data. The verdict in status is not changed.
func holdForGuardrails(spec *cxv1.CXExperimentSpec, judgements rollout.Judgements) {
	if len(spec.Guardrails) == 0 {
		return
	}
	for seg, variants := range judgements {
		for v, j := range variants {
			if j.Verdict == cxv1.VerdictNonInferior {
				j.Verdict = cxv1.VerdictInconclusive
				j.Evidence = "guardrails not read yet; read every spec.satisfaction.interval (" + j.Evidence + ")"
				judgements[seg][v] = j
			}
		}
	}
}
