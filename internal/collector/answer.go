package collector

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/assignment"
	"github.com/rapport-dev/rapport/internal/metrics"
)

// This file holds what the public endpoint and the webhooks share: one
// answer checked against its experiment, the signed assignment verified,
// and the rejection counted.

// Rejection reasons of single answers (browser and webhooks), the values of
// the reason label of rapport_feedback_rejections_total.
const (
	reasonUnknownExperiment  = "UnknownExperiment"
	reasonUnknownVariant     = "UnknownVariant"
	reasonUnknownSegment     = "UnknownSegment"
	reasonScoreOffScale      = "ScoreOffScale"
	reasonForgedAssignment   = "ForgedAssignment"
	reasonExpiredAssignment  = "ExpiredAssignment"
	reasonExperimentInactive = "ExperimentNotAccepting"
	reasonCommitFailed       = "CommitFailed"
	reasonTooLarge           = "TooLarge"
	reasonRateLimited        = "RateLimited"
)

// feedbackError is a refused answer: the HTTP error and its reason label.
type feedbackError struct {
	*Error
	reason string
}

func refuse(code int, reason, format string, args ...any) *feedbackError {
	return &feedbackError{Error: errorf(code, format, args...), reason: reason}
}

// single checks one answer against exp and returns it as a Response.
// field prefixes the field names in messages ("" for the public
// endpoint's body, "spec.mapping." for a webhook's mapping). Errors are 422
// naming the field.
func single(exp *cxv1.CXExperiment, field, variant, segment string, score int64, at time.Time, epoch int32) (Response, *feedbackError) {
	sc, err := scaleOf(exp)
	if err != nil {
		return Response{}, refuse(http.StatusConflict, reasonExperimentInactive, "experiment %s cannot take responses: %v", exp.Name, err)
	}
	if !slices.Contains(sc.variants, variant) {
		return Response{}, refuse(http.StatusUnprocessableEntity, reasonUnknownVariant,
			"%svariant: %q is not a variant of experiment %s; use one of %s", field, clip(variant), exp.Name, strings.Join(sc.variants, ", "))
	}
	seg, msg := checkSegment(segment, sc)
	if msg != "" {
		return Response{}, refuse(http.StatusUnprocessableEntity, reasonUnknownSegment, "%ssegment%s", field, msg)
	}
	if score < int64(sc.min) || score > int64(sc.max) {
		return Response{}, refuse(http.StatusUnprocessableEntity, reasonScoreOffScale,
			"%sscore: %d is outside the %s scale %d..%d of experiment %s; map the survey's scale onto it", field, score, sc.metric, sc.min, sc.max, exp.Name)
	}
	return Response{Variant: variant, Segment: seg, Score: int(score), At: at, Epoch: epoch}, nil
}

// verifyAssignment checks a signed assignment value for exp: its signature
// with exp's key (re-read once if the key may have been replaced), and that
// it names exp's current run. forgedCode is the status of a forged value
// (403 for a browser, 422 for a webhook's payload).
func (s *Server) verifyAssignment(ctx context.Context, exp *cxv1.CXExperiment, value, field string, forgedCode int) (assignment.Assignment, *feedbackError) {
	forged := func(why string) *feedbackError {
		return refuse(forgedCode, reasonForgedAssignment, "%sassignment is refused: %s; nothing was counted. The value must be the assignment cookie set by the gateway (or signed by the app with the experiment's key), unmodified", field, why)
	}
	a, err := assignment.Parse(value)
	if err != nil {
		return a, forged(err.Error())
	}
	if a.Namespace != exp.Namespace || a.Experiment != exp.Name {
		return a, forged(fmt.Sprintf("it is an assignment of experiment %s in namespace %s, not of %s in %s", clip(a.Experiment), clip(a.Namespace), exp.Name, exp.Namespace))
	}
	key, err := s.keys.Get(ctx, exp)
	if err == nil {
		_, err = assignment.Verify(key, value)
		if errors.Is(err, assignment.ErrForged) {
			// The Secret may have been recreated since it was cached.
			if key2, changed, rerr := s.keys.Refresh(ctx, exp, 10*time.Second); rerr == nil && changed {
				_, err = assignment.Verify(key2, value)
			}
		}
	}
	switch {
	case errors.Is(err, assignment.ErrNoKey):
		return a, refuse(http.StatusConflict, reasonForgedAssignment, "experiment %s has no assignment key yet (Secret %s); it is created when the experiment runs with spec.traffic.gatewayAPI.assignmentCookie or spec.satisfaction.source.collector.browser", exp.Name, assignment.SecretName(exp.Name))
	case errors.Is(err, assignment.ErrForged), errors.Is(err, assignment.ErrMalformed):
		return a, forged(err.Error())
	case err != nil:
		s.log.Error(err, "reading the assignment key", "namespace", exp.Namespace, "experiment", exp.Name)
		return a, refuse(http.StatusServiceUnavailable, reasonCommitFailed, "could not read the assignment key of experiment %s; retry", exp.Name)
	}
	if a.Run != exp.Status.Run {
		return a, refuse(http.StatusConflict, reasonExpiredAssignment,
			"%sassignment has expired: it is from run %d of experiment %s, which is in run %d now; nothing was counted (the customer gets a current assignment on their next visit)", field, a.Run, exp.Name, exp.Status.Run)
	}
	return a, nil
}

// countRejection counts a refused answer; an answer that names no existing
// object is counted under source "unknown".
func countRejection(namespace, source, reason string) {
	if source == "" {
		namespace, source = "", "unknown"
	}
	metrics.FeedbackRejections.WithLabelValues(namespace, source, reason).Inc()
}

// commitOne commits one answer with its deduplication key and reports
// whether it was a duplicate.
func (s *Server) commitOne(nn types.NamespacedName, run int32, key string, r Response) (bool, *feedbackError) {
	b := &batch{run: run, responses: []Response{r}, key: KeyDigest(nn.Namespace, nn.Name, run, key)}
	if err := s.commit.submit(nn, b); err != nil {
		var e *Error
		if !errors.As(err, &e) {
			e = errorf(http.StatusServiceUnavailable, "%v", err)
		}
		return false, &feedbackError{Error: e, reason: reasonFor(e.Code, reasonCommitFailed)}
	}
	return b.duplicate, nil
}
