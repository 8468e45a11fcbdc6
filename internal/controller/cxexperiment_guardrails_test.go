package controller

import (
	"strings"
	"testing"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/rollout"
)

func TestHoldForGuardrails(t *testing.T) {
	judgements := func() rollout.Judgements {
		return rollout.Judgements{"enterprise": {
			"one-page": {Verdict: cxv1.VerdictNonInferior, Evidence: "CSAT 87.1 vs 86.0"},
			"express":  {Verdict: cxv1.VerdictInferior, Evidence: "CSAT 74.1 vs 86.0"},
		}}
	}
	spec := &measureExperiment().Spec
	j := judgements()
	holdForGuardrails(spec, j)
	if j["enterprise"]["one-page"].Verdict != cxv1.VerdictNonInferior {
		t.Error("without guardrails nothing waits")
	}
	spec.Guardrails = []cxv1.Guardrail{{Name: "error-rate"}}
	holdForGuardrails(spec, j)
	if got := j["enterprise"]["one-page"]; got.Verdict != cxv1.VerdictInconclusive || !strings.Contains(got.Evidence, "guardrails not read yet") || !strings.Contains(got.Evidence, "CSAT 87.1") {
		t.Errorf("a non-inferior variant between guardrail reads: %+v, want Inconclusive with the reason and the evidence", got)
	}
	if got := j["enterprise"]["express"]; got.Verdict != cxv1.VerdictInferior {
		t.Errorf("an inferior variant still rolls back between reads: %+v", got)
	}
}
