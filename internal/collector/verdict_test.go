package collector

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// gateExperiment is a two-segment experiment with variants one-page and
// express, measured: each variant's verdict per segment is given as
// "segment/variant" -> verdict (and state RolledBack for Inferior ones when
// rolledBack is set).
func gateExperiment(phase cxv1.ExperimentPhase, verdicts map[string]cxv1.Verdict, rolledBack bool) *cxv1.CXExperiment {
	exp := testExperiment(cxv1.MetricCSAT, "enterprise", "new-customers")
	exp.Spec.Variants = append(exp.Spec.Variants, cxv1.Variant{Name: "express"})
	exp.Spec.Steps = []cxv1.Step{{Weight: 10}, {Weight: 50}}
	exp.Spec.Satisfaction.MaxDrop, exp.Spec.Satisfaction.Confidence = "3", "95"
	exp.Status.Phase, exp.Status.CurrentStep = phase, 2
	at := metav1.NewTime(time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC))
	exp.Status.MeasuredAt = &at
	for _, seg := range []string{"enterprise", "new-customers"} {
		s := cxv1.SegmentStatus{Name: seg, Variants: []cxv1.VariantStatus{
			{Name: "control", State: cxv1.StateControl, Weight: 50, Responses: 1200, Score: "86.0", ScoreInterval: "[83.9, 88.1]"},
		}}
		for _, v := range []string{"one-page", "express"} {
			verdict := verdicts[seg+"/"+v]
			vs := cxv1.VariantStatus{Name: v, State: cxv1.StateActive, Weight: 25, Responses: 600, Verdict: verdict}
			if verdict != cxv1.VerdictInsufficientData && verdict != "" {
				vs.Score, vs.ScoreInterval, vs.Difference, vs.DifferenceInterval = "84.2", "[80.6, 87.8]", "-1.8", "[-6.0, 2.4]"
				vs.Message = "CSAT 84.2 [80.6, 87.8] vs control 86.0: " + string(verdict)
			}
			if verdict == cxv1.VerdictInferior && rolledBack {
				vs.State, vs.Weight = cxv1.StateRolledBack, 0
				exp.Status.Rollbacks = append(exp.Status.Rollbacks, cxv1.Rollback{Variant: v, Segment: seg, Reason: cxv1.RollbackInferior, At: at, Evidence: "difference -11.9 [-16.8, -7.0] lies below -3"})
			}
			s.Variants = append(s.Variants, vs)
		}
		exp.Status.Segments = append(exp.Status.Segments, s)
	}
	return exp
}

func allVerdicts(v cxv1.Verdict) map[string]cxv1.Verdict {
	return map[string]cxv1.Verdict{"enterprise/one-page": v, "enterprise/express": v, "new-customers/one-page": v, "new-customers/express": v}
}

func TestBuildVerdictDecision(t *testing.T) {
	mixed := allVerdicts(cxv1.VerdictNonInferior)
	mixed["new-customers/express"] = cxv1.VerdictInferior
	waiting := allVerdicts(cxv1.VerdictNonInferior)
	waiting["enterprise/one-page"] = cxv1.VerdictInconclusive
	failed := gateExperiment(cxv1.PhaseFailed, allVerdicts(cxv1.VerdictNonInferior), false)
	failed.Status.Conditions = []metav1.Condition{{Type: cxv1.ConditionReady, Status: metav1.ConditionFalse, Reason: cxv1.ReasonConflict, Message: "route checkout is used by experiment other"}}
	succeeded := gateExperiment(cxv1.PhaseSucceeded, allVerdicts(cxv1.VerdictNonInferior), false)
	for i := range succeeded.Status.Segments {
		succeeded.Status.Segments[i].Variants[1].State = cxv1.StatePromoted
		succeeded.Status.Segments[i].Variants[2].State = cxv1.StateRetired
	}
	pending := testExperiment(cxv1.MetricCSAT, "enterprise", "new-customers")
	pending.Status = cxv1.CXExperimentStatus{}

	for _, tc := range []struct {
		name       string
		exp        *cxv1.CXExperiment
		filter     VerdictFilter
		want       GateDecision
		reasonHas  string
		segments   int
		perVariant int // variants listed per segment, control included
	}{
		{"every variant non-inferior everywhere", gateExperiment(cxv1.PhaseProgressing, allVerdicts(cxv1.VerdictNonInferior), false), VerdictFilter{}, GatePromote, "4 verdicts", 2, 3},
		{"one inferior verdict rolls back", gateExperiment(cxv1.PhaseProgressing, mixed, false), VerdictFilter{}, GateRollback, "express in segment new-customers", 2, 3},
		{"a rolled-back variant carries its evidence", gateExperiment(cxv1.PhaseProgressing, mixed, true), VerdictFilter{}, GateRollback, "rolled back (Inferior): difference -11.9", 2, 3},
		{"the variant asked about is fine elsewhere", gateExperiment(cxv1.PhaseProgressing, mixed, true), VerdictFilter{Variant: "one-page"}, GatePromote, "2 verdicts", 2, 2},
		{"the segment asked about is fine", gateExperiment(cxv1.PhaseProgressing, mixed, true), VerdictFilter{Segment: "enterprise"}, GatePromote, "2 verdicts", 1, 3},
		{"inconclusive waits", gateExperiment(cxv1.PhaseProgressing, waiting, false), VerdictFilter{}, GateWait, "one-page in segment enterprise is Inconclusive after 600 responses", 2, 3},
		{"too few responses waits", gateExperiment(cxv1.PhaseProgressing, allVerdicts(cxv1.VerdictInsufficientData), false), VerdictFilter{}, GateWait, "InsufficientData", 2, 3},
		{"not measured yet waits", pending, VerdictFilter{}, GateWait, "has not measured (phase Pending)", 0, 0},
		{"failed rolls back", failed, VerdictFilter{}, GateRollback, "the experiment failed: route checkout is used", 2, 3},
		{"rolled back everywhere", gateExperiment(cxv1.PhaseRolledBack, allVerdicts(cxv1.VerdictInconclusive), false), VerdictFilter{}, GateRollback, "the experiment was rolled back", 2, 3},
		{"promoted and retired both pass", succeeded, VerdictFilter{}, GatePromote, "4 verdicts", 2, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := BuildVerdict(tc.exp, tc.filter)
			if err != nil {
				t.Fatal(err)
			}
			if v.Decision != tc.want || !strings.Contains(v.Reason, tc.reasonHas) {
				t.Errorf("decision %s (%s), want %s with %q", v.Decision, v.Reason, tc.want, tc.reasonHas)
			}
			if len(v.Segments) != tc.segments {
				t.Fatalf("%d segments, want %d", len(v.Segments), tc.segments)
			}
			for _, s := range v.Segments {
				if len(s.Variants) != tc.perVariant {
					t.Errorf("segment %s lists %d variants, want %d", s.Name, len(s.Variants), tc.perVariant)
				}
			}
		})
	}
}

func TestBuildVerdictNumbers(t *testing.T) {
	v, err := BuildVerdict(gateExperiment(cxv1.PhaseProgressing, allVerdicts(cxv1.VerdictInconclusive), false), VerdictFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if v.APIVersion != VerdictAPIVersion || v.Kind != VerdictKind || v.Metric != "CSAT" || v.MaxDrop != 3 || v.Confidence != 95 || v.Steps != 2 || v.Step != 2 || v.Run != 1 {
		t.Errorf("header: %+v", v)
	}
	ctl, one := v.Segments[0].Variants[0], v.Segments[0].Variants[1]
	if !ctl.Control || ctl.Score == nil || *ctl.Score != 86 || ctl.ScoreInterval == nil || *ctl.ScoreInterval != (Interval{83.9, 88.1}) || ctl.Decision != "" || ctl.Difference != nil {
		t.Errorf("control: %+v", ctl)
	}
	if one.Control || *one.Score != 84.2 || *one.Difference != -1.8 || *one.DifferenceInterval != (Interval{-6, 2.4}) || one.Verdict != "Inconclusive" || one.Decision != GateWait {
		t.Errorf("one-page: %+v", one)
	}
	// JSON: numbers, not strings; absent values are left out.
	b, _ := json.Marshal(v)
	for _, want := range []string{`"score":84.2`, `"differenceInterval":{"lower":-6,"upper":2.4}`, `"decision":"Wait"`, `"measuredAt":"2026-05-04T10:00:00Z"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON lacks %s:\n%s", want, b)
		}
	}
	empty, _ := BuildVerdict(gateExperiment(cxv1.PhaseProgressing, allVerdicts(cxv1.VerdictInsufficientData), false), VerdictFilter{})
	if b, _ := json.Marshal(empty.Segments[0].Variants[1]); strings.Contains(string(b), "score") {
		t.Errorf("a variant without a score has one in JSON: %s", b)
	}
}

func TestBuildVerdictRejectsUnknownNames(t *testing.T) {
	exp := gateExperiment(cxv1.PhaseProgressing, allVerdicts(cxv1.VerdictNonInferior), false)
	for _, tc := range []struct {
		f    VerdictFilter
		want string
	}{
		{VerdictFilter{Variant: "one-pag"}, `variant "one-pag" is not a variant of experiment checkout; use one of one-page, express`},
		{VerdictFilter{Variant: "control"}, `variant "control" is the control`},
		{VerdictFilter{Segment: "vip"}, `segment "vip" is not a segment of experiment checkout; use one of enterprise, new-customers`},
	} {
		_, err := BuildVerdict(exp, tc.f)
		if err == nil || err.Code != http.StatusBadRequest || !strings.Contains(err.Message, tc.want) {
			t.Errorf("%+v: %v, want 400 %q", tc.f, err, tc.want)
		}
	}
}

func TestTokenScopes(t *testing.T) {
	gate := tokenSecret("shop", "gate", "gate-token", true)
	gate.Annotations = map[string]string{AnnotationTokenScopes: "verdicts"}
	app := tokenSecret("shop", "app", "app-token", true)
	app.Annotations = map[string]string{AnnotationTokenScopes: " responses "}
	both := tokenSecret("shop", "both", "both-token", true)
	c := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(gate, app, both, tokenSecret("other", "x", "other-token", true)).Build()
	for _, tc := range []struct {
		token, scope string
		code         int
	}{
		{"gate-token", ScopeVerdicts, 0},
		{"gate-token", ScopeResponses, http.StatusForbidden},
		{"app-token", ScopeResponses, 0},
		{"app-token", ScopeVerdicts, http.StatusForbidden},
		{"both-token", ScopeResponses, 0},
		{"both-token", ScopeVerdicts, 0},
		{"other-token", ScopeVerdicts, http.StatusForbidden},
		{"nope", ScopeVerdicts, http.StatusUnauthorized},
		{"", ScopeVerdicts, http.StatusUnauthorized},
	} {
		_, err := authenticateToken(context.Background(), c, "shop", tc.token, tc.scope)
		code := 0
		if err != nil {
			code = err.Code
		}
		if code != tc.code {
			t.Errorf("token %s for %s: %d (%v), want %d", tc.token, tc.scope, code, err, tc.code)
		}
	}
	// The feedback API itself refuses a verdicts-only token.
	_, err := authenticate(context.Background(), c, "shop", "Bearer gate-token")
	if err == nil || err.Code != http.StatusForbidden || !strings.Contains(err.Message, AnnotationTokenScopes) {
		t.Errorf("posting responses with a verdicts-only token: %v", err)
	}
}

func TestGateHandlers(t *testing.T) {
	gate := tokenSecret("shop", "gate", "gate-token", true)
	gate.Annotations = map[string]string{AnnotationTokenScopes: ScopeVerdicts}
	exp := gateExperiment(cxv1.PhaseProgressing, allVerdicts(cxv1.VerdictNonInferior), false)
	exp.Name = "gated"
	srv, _ := newUnitServer(t, Options{RateLimit: -1})
	if err := srv.opts.Client.Create(context.Background(), gate); err != nil {
		t.Fatal(err)
	}
	if err := srv.opts.Client.Create(context.Background(), exp); err != nil {
		t.Fatal(err)
	}
	do := func(method, path, body string, header map[string]string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		for k, v := range header {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, req)
		return rec
	}
	auth := map[string]string{"Authorization": "Bearer gate-token"}
	const base = "/v1/namespaces/shop/experiments/gated"
	for _, tc := range []struct {
		name, method, path, body string
		header                   map[string]string
		code                     int
		has                      string
	}{
		{"verdict", http.MethodGet, base + "/verdict", "", auth, http.StatusOK, `"decision":"Promote"`},
		{"verdict of one variant", http.MethodGet, base + "/verdict?variant=express&segment=enterprise", "", auth, http.StatusOK, `"decision":"Promote"`},
		{"no token", http.MethodGet, base + "/verdict", "", nil, http.StatusUnauthorized, "Authorization: Bearer"},
		{"unknown query parameter", http.MethodGet, base + "/verdict?varient=express", "", auth, http.StatusBadRequest, `unknown query parameter \"varient\"`},
		{"unknown variant", http.MethodGet, base + "/verdict?variant=expres", "", auth, http.StatusBadRequest, "use one of one-page, express"},
		{"unknown experiment", http.MethodGet, "/v1/namespaces/shop/experiments/nope/verdict", "", auth, http.StatusNotFound, "experiment nope not found"},
		{"POST to the verdict", http.MethodPost, base + "/verdict", "{}", auth, http.StatusMethodNotAllowed, "GET the verdict"},
		{"flagger confirm-promotion", http.MethodPost, base + "/flagger/confirm-promotion", `{"name":"podinfo","namespace":"shop","phase":"Progressing","metadata":{"token":"gate-token"}}`, nil, http.StatusOK, `"decision":"Promote"`},
		{"flagger rollback says no", http.MethodPost, base + "/flagger/rollback", `{"name":"podinfo","namespace":"shop","phase":"Progressing","metadata":{"token":"gate-token"}}`, nil, http.StatusConflict, `"decision":"Promote"`},
		{"flagger without a token", http.MethodPost, base + "/flagger/rollback", `{"name":"podinfo","namespace":"shop","phase":"Progressing"}`, nil, http.StatusUnauthorized, "metadata.token"},
		{"flagger hook Rapport does not answer", http.MethodPost, base + "/flagger/pre-rollout", `{}`, nil, http.StatusNotFound, "confirm-promotion and rollback"},
		{"flagger GET", http.MethodGet, base + "/flagger/rollback", "", nil, http.StatusMethodNotAllowed, "Flagger POSTs"},
		{"flagger bad body", http.MethodPost, base + "/flagger/rollback", `not json`, nil, http.StatusBadRequest, "not Flagger's webhook payload"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := do(tc.method, tc.path, tc.body, tc.header)
			if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.has) {
				t.Errorf("%s %s: %d %s, want %d with %q", tc.method, tc.path, rec.Code, rec.Body.String(), tc.code, tc.has)
			}
		})
	}
}
