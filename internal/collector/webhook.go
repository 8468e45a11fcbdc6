package collector

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/assignment"
	"github.com/rapport-dev/rapport/internal/feedback"
	"github.com/rapport-dev/rapport/internal/metrics"
)

// Webhooks from survey tools:
//
//	POST /v1/namespaces/{namespace}/sources/{name}/webhook
//	HEAD the same path: 200 when the FeedbackSource exists (SurveyMonkey
//	     checks the URL this way when the webhook is created)
//
// The raw body is checked against the provider's signature first, then
// decoded and mapped with the source's CEL mapping into one response,
// which is checked against its experiment and committed with the event id
// as its deduplication key. Answers: 202 {"accepted":1} once the count is
// durable (or {"duplicates":1} for an event already counted), 200
// {"ignored":...} for an event the mapping does not count, 401 unsigned or
// wrongly signed, 413 too large, 422 a payload the mapping cannot read or
// that names an unknown experiment, variant or segment or a score off the
// scale, 409 an experiment that takes no answers now or an expired
// assignment, 404 an unknown source, 503 a problem on Rapport's side
// (Secret missing, mapping broken, commit failed): the provider retries.
// Nothing is ever partly counted: one event is one response.

// RBAC of the webhooks: FeedbackSources are read from the cache, their
// status gets the last accepted and rejected events; their Secrets are
// read on demand (the secrets rule is in server.go).
// +kubebuilder:rbac:groups=cx.rapport.dev,resources=feedbacksources,verbs=get;list;watch
// +kubebuilder:rbac:groups=cx.rapport.dev,resources=feedbacksources/status,verbs=get;patch

// Rejection reasons of webhooks.
const (
	reasonSourceNotFound    = "SourceNotFound"
	reasonSecretUnavailable = "SecretUnavailable"
	reasonMappingInvalid    = "MappingInvalid"
	reasonMappingFailed     = "MappingFailed"
	reasonInvalidJSON       = "InvalidJSON"
	reasonProviderAPI       = "ProviderAPIFailed"
)

// secretsTTL is how long a source's Secret is reused before it is re-read;
// a signature that fails re-reads it sooner (at most every secretRetry).
const (
	secretsTTL  = 30 * time.Second
	secretRetry = 5 * time.Second
)

// ignored is the 200 body of an event that is acknowledged, not counted.
type ignored struct {
	Ignored string `json:"ignored"`
}

// webhookRequest is a webhook request as serveWebhook reads it, whichever
// HTTP server took it: net/http's handler (webhook) or the fasthttp one
// (fastWebhook).
type webhookRequest struct {
	method string
	nn     types.NamespacedName
	// contentLength is the declared length of the body (-1: unknown).
	contentLength int64
	header        feedback.Header
	// headers gives every header as net/http's Request.Header, for a
	// mapping that reads them.
	headers func() http.Header
	// body reads the body, at most limit bytes (more: *http.MaxBytesError).
	body   func(limit int64) ([]byte, error)
	remote func() string
}

func (s *Server) webhook(w http.ResponseWriter, r *http.Request) {
	rep := s.serveWebhook(r.Context(), webhookRequest{
		method:        r.Method,
		nn:            types.NamespacedName{Namespace: r.PathValue("namespace"), Name: r.PathValue("name")},
		contentLength: r.ContentLength,
		header:        r.Header,
		headers:       func() http.Header { return r.Header },
		body:          func(limit int64) ([]byte, error) { return readBody(w, r, limit) },
		remote:        func() string { return r.RemoteAddr },
	})
	rep.write(w)
}

// serveWebhook serves one webhook request.
func (s *Server) serveWebhook(ctx context.Context, r webhookRequest) reply {
	nn := r.nn
	ns, name := nn.Namespace, nn.Name
	source := ""
	var rep reply
	reject := func(e *feedbackError) reply {
		if e.Code == http.StatusServiceUnavailable {
			rep.retryAfter = "5"
		}
		countRejection(ns, source, e.reason)
		if source != "" {
			s.statuses.rejected(nn, e.reason, e.Code, e.Message, s.clock.Now())
		}
		s.log.Info("webhook rejected", "namespace", clip(ns), "source", clip(name), "code", e.Code, "reason", e.reason, "message", e.Message, "remote", r.remote())
		rep.code, rep.err = e.Code, e.Error
		return rep
	}
	if r.method != http.MethodPost && r.method != http.MethodHead {
		rep.allow = "POST, HEAD"
		return reject(refuse(http.StatusMethodNotAllowed, "MethodNotAllowed", "method %s is not allowed; the survey tool POSTs its webhooks", r.method))
	}
	src, err := s.source(ctx, nn)
	if err != nil {
		return reject(err)
	}
	source = "feedbacksource/" + name
	if r.method == http.MethodHead {
		return reply{code: http.StatusOK}
	}
	if r.contentLength > s.maxBody {
		return reject(refuse(http.StatusRequestEntityTooLarge, reasonTooLarge, "the body is %d bytes, at most %d are accepted", r.contentLength, s.maxBody))
	}
	body, rerr := r.body(s.maxBody)
	if rerr != nil {
		var tooBig *http.MaxBytesError
		if errors.As(rerr, &tooBig) {
			return reject(refuse(http.StatusRequestEntityTooLarge, reasonTooLarge, "the body is larger than %d bytes", s.maxBody))
		}
		return reject(refuse(http.StatusBadRequest, reasonInvalidJSON, "could not read the body: %v", rerr))
	}
	if e := s.checkSignature(ctx, src, r.header, body); e != nil {
		return reject(e)
	}
	out, code, e := s.handleEvent(ctx, src, r.headers, body)
	if e != nil {
		return reject(e)
	}
	if code == http.StatusAccepted {
		s.statuses.accepted(nn, s.clock.Now())
	}
	return reply{code: code, body: out}
}

// source reads the FeedbackSource named in the URL.
// Like lookupExperiment, it reads the cache without a copy: the source is
// read-only here.
func (s *Server) source(ctx context.Context, nn types.NamespacedName) (*cxv1.FeedbackSource, *feedbackError) {
	notFound := func() *feedbackError {
		return refuse(http.StatusNotFound, reasonSourceNotFound, "FeedbackSource %s not found in namespace %s; create it, or fix the webhook URL /v1/namespaces/{namespace}/sources/{name}/webhook", clip(nn.Name), clip(nn.Namespace))
	}
	if !mayExist(nn.Namespace, nn.Name) {
		return nil, notFound()
	}
	src, err := s.sources.get(ctx, nn)
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil, notFound()
		}
		s.log.Error(err, "reading FeedbackSource", "namespace", nn.Namespace, "name", nn.Name)
		return nil, refuse(http.StatusServiceUnavailable, reasonCommitFailed, "could not read FeedbackSource %s; retry", nn.Name)
	}
	return src, nil
}

// checkSignature verifies the raw body with the source's Secret. A failure
// re-reads the Secret once (it may have been rotated) before refusing.
func (s *Server) checkSignature(ctx context.Context, src *cxv1.FeedbackSource, h feedback.Header, body []byte) *feedbackError {
	data, e := s.secrets.get(ctx, src.Namespace, src.Spec.SecretRef.Name, 0)
	if e != nil {
		return e
	}
	if missing := feedback.MissingKeys(src.Spec.Provider, src.Spec.Generic, data); len(missing) > 0 {
		return refuse(http.StatusServiceUnavailable, reasonSecretUnavailable, "Secret %s lacks key(s) %s that provider %s needs; add them (the webhook is retried)", src.Spec.SecretRef.Name, strings.Join(missing, ", "), src.Spec.Provider)
	}
	err := feedback.Verify(src.Spec.Provider, src.Spec.Generic, data, h, body)
	var ae *feedback.AuthError
	if errors.As(err, &ae) && ae.Reason == feedback.ReasonInvalidSignature {
		if fresh, e := s.secrets.get(ctx, src.Namespace, src.Spec.SecretRef.Name, secretRetry); e == nil {
			err = feedback.Verify(src.Spec.Provider, src.Spec.Generic, fresh, h, body)
		}
	}
	if errors.As(err, &ae) {
		return refuse(http.StatusUnauthorized, ae.Reason, "%s; nothing was counted", ae.Message)
	}
	return nil
}

// handleEvent maps a verified payload to a response and commits it.
func (s *Server) handleEvent(ctx context.Context, src *cxv1.FeedbackSource, headers func() http.Header, body []byte) (any, int, *feedbackError) {
	m, err := s.mappings.get(src)
	if err != nil {
		return nil, 0, refuse(http.StatusServiceUnavailable, reasonMappingInvalid, "FeedbackSource %s cannot map events: %v; fix the FeedbackSource (the webhook is retried)", src.Name, err)
	}
	payload, err := m.Decode(body)
	if err != nil {
		return nil, 0, refuse(http.StatusBadRequest, reasonInvalidJSON, "%v; nothing was counted", err)
	}
	defer payload.Release() // nothing below keeps a part of it
	in := feedback.Input{Payload: payload}
	if m.ReadsHeaders() {
		in.Headers = firstValues(headers())
	}
	ok, err := m.Accept(in)
	if err != nil {
		return nil, 0, refuse(http.StatusUnprocessableEntity, reasonMappingFailed, "%v; nothing was counted", err)
	}
	if !ok {
		metrics.FeedbackIgnored.WithLabelValues(src.Namespace, "feedbacksource/"+src.Name).Inc()
		return ignored{Ignored: "spec.mapping.accept is false for this event (for example a partial response or an update); nothing was counted"}, http.StatusOK, nil
	}
	if src.Spec.Provider == cxv1.ProviderSurveyMonkey {
		var fe *feedbackError
		if in.Response, fe = s.surveyMonkeyResponse(ctx, src, payload); fe != nil {
			return nil, 0, fe
		}
	}
	ev, err := m.Map(in)
	if err != nil {
		return nil, 0, refuse(http.StatusUnprocessableEntity, reasonMappingFailed, "%v; nothing was counted", err)
	}
	exp, fe := s.eventExperiment(ctx, src, ev)
	if fe != nil {
		return nil, 0, fe
	}
	variant, segment, epoch := ev.Variant, ev.Segment, int32(0)
	if ev.Assignment != "" {
		a, fe := s.verifyAssignment(ctx, exp, ev.Assignment, "spec.mapping.", http.StatusUnprocessableEntity)
		if fe != nil {
			return nil, 0, fe
		}
		variant, segment, epoch = a.Variant, a.Segment, a.Epoch
	}
	resp, fe := single(exp, "spec.mapping.", variant, segment, ev.Score, ev.At, epoch)
	if fe != nil {
		return nil, 0, fe
	}
	dup, fe := s.commitOne(client.ObjectKeyFromObject(exp), exp.Status.Run, "source\x00"+src.Name+"\x00"+ev.EventID, resp)
	if fe != nil {
		return nil, 0, fe
	}
	if dup {
		return accepted{Duplicates: 1}, http.StatusAccepted, nil
	}
	return accepted{Accepted: 1}, http.StatusAccepted, nil
}

// eventExperiment finds the experiment an event names (by its assignment,
// or by the experiment field) and checks it takes answers now.
func (s *Server) eventExperiment(ctx context.Context, src *cxv1.FeedbackSource, ev feedback.Event) (*cxv1.CXExperiment, *feedbackError) {
	name, field := ev.Experiment, "spec.mapping.experiment"
	if ev.Assignment != "" {
		a, err := assignment.Parse(ev.Assignment)
		if err != nil {
			return nil, refuse(http.StatusUnprocessableEntity, reasonForgedAssignment, "spec.mapping.assignment gave %q, which is not an assignment value: %v; pass the assignment cookie's value unmodified", clip(ev.Assignment), err)
		}
		if a.Namespace != src.Namespace {
			return nil, refuse(http.StatusUnprocessableEntity, reasonForgedAssignment, "spec.mapping.assignment names namespace %s; a FeedbackSource of namespace %s takes answers for its own namespace only", clip(a.Namespace), src.Namespace)
		}
		name, field = a.Experiment, "spec.mapping.assignment"
	}
	if name == "" {
		return nil, refuse(http.StatusUnprocessableEntity, reasonUnknownExperiment, "spec.mapping.assignment and spec.mapping.experiment gave nothing: pass the assignment cookie to the survey tool (e.g. a hidden field named rapport), or map the experiment, variant and segment")
	}
	exp, e := s.checkedExperiment(ctx, src.Namespace, name)
	if e == nil {
		return exp, nil
	}
	switch e.Code {
	case http.StatusNotFound:
		return nil, refuse(http.StatusUnprocessableEntity, reasonUnknownExperiment, "%s names experiment %q, which does not exist in namespace %s; nothing was counted", field, clip(name), src.Namespace)
	case http.StatusConflict:
		return nil, &feedbackError{Error: e, reason: reasonExperimentInactive}
	}
	return nil, &feedbackError{Error: e, reason: reasonCommitFailed}
}

func firstValues(h http.Header) map[string]string {
	out := make(map[string]string, len(h))
	for k, v := range h {
		if len(v) > 0 {
			out[strings.ToLower(k)] = v[0]
		}
	}
	return out
}

// secretCache holds FeedbackSources' Secrets, read without the manager's
// cache (which holds feedback tokens only) and reused for secretsTTL.
type secretCache struct {
	reader client.Reader
	now    func() time.Time

	mu      sync.Mutex
	entries map[types.NamespacedName]secretEntry
}

type secretEntry struct {
	data    map[string][]byte
	fetched time.Time
}

// get returns the Secret's data, re-read when older than secretsTTL, or
// than maxAge when maxAge > 0.
func (c *secretCache) get(ctx context.Context, namespace, name string, maxAge time.Duration) (map[string][]byte, *feedbackError) {
	nn := types.NamespacedName{Namespace: namespace, Name: name}
	if maxAge <= 0 {
		maxAge = secretsTTL
	}
	c.mu.Lock()
	e, ok := c.entries[nn]
	c.mu.Unlock()
	if ok && c.now().Sub(e.fetched) < maxAge {
		return e.data, nil
	}
	sec := &corev1.Secret{}
	if err := c.reader.Get(ctx, nn, sec); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, refuse(http.StatusServiceUnavailable, reasonSecretUnavailable, "Secret %s of the FeedbackSource's spec.secretRef does not exist in namespace %s; create it (the webhook is retried)", name, namespace)
		}
		return nil, refuse(http.StatusServiceUnavailable, reasonSecretUnavailable, "could not read Secret %s: %v", name, err)
	}
	c.mu.Lock()
	if c.entries == nil || len(c.entries) > maxLimiters {
		c.entries = map[types.NamespacedName]secretEntry{}
	}
	c.entries[nn] = secretEntry{data: sec.Data, fetched: c.now()}
	c.mu.Unlock()
	return sec.Data, nil
}

// mappingCache holds compiled mappings by source UID and generation.
type mappingCache struct {
	mu      sync.Mutex
	entries map[types.UID]mappingEntry
}

type mappingEntry struct {
	generation int64
	mapping    *feedback.Mapping
	err        error
}

func (c *mappingCache) get(src *cxv1.FeedbackSource) (*feedback.Mapping, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[src.UID]; ok && e.generation == src.Generation {
		return e.mapping, e.err
	}
	m, err := feedback.Compile(src.Spec.Provider, src.Spec.Mapping)
	if c.entries == nil || len(c.entries) > maxLimiters {
		c.entries = map[types.UID]mappingEntry{}
	}
	c.entries[src.UID] = mappingEntry{generation: src.Generation, mapping: m, err: err}
	return m, err
}
