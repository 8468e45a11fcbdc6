package collector

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"mime"
	"net"
	"net/http"
	"slices"
	"strconv"
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
)

// The public endpoint: answers from customers' browsers, authenticated by
// the signed assignment instead of a token.
//
//	GET     /v1/public/namespaces/{namespace}/experiments/{name}            the survey's settings
//	POST    /v1/public/namespaces/{namespace}/experiments/{name}/responses  one answer
//	OPTIONS both, for CORS preflight
//
// Every request must come from an allowed origin (Origin header, checked
// before anything else about the experiment is revealed), within the
// per-client rate limit. An answer is
//
//	{"assignment": "<the assignment cookie's value>", "respondent": "<id>", "score": 4}
//
// and is counted once per respondent and run (the respondent's key goes
// into spec.recentKeyDigests with the count).

// Defaults of the public endpoint.
const (
	// DefaultPublicRateLimit is the sustained requests per second per client
	// address; DefaultPublicRateBurst the bucket.
	DefaultPublicRateLimit = 1
	DefaultPublicRateBurst = 20
	// maxPublicBody bounds an answer's body.
	maxPublicBody = 4 << 10
	// originsTTL is how long origins read from a Secret are reused.
	originsTTL = 30 * time.Second
	// preflightMaxAge lets browsers reuse a preflight answer.
	preflightMaxAge = "600"
)

// Rejection reasons of the public endpoint.
const (
	reasonMissingOrigin     = "MissingOrigin"
	reasonOriginNotAllowed  = "OriginNotAllowed"
	reasonBrowserNotEnabled = "BrowserNotEnabled"
	reasonInvalidAnswer     = "InvalidAnswer"
)

// publicAnswer is the body of a browser's answer.
type publicAnswer struct {
	Assignment string          `json:"assignment"`
	Respondent string          `json:"respondent"`
	Score      json.RawMessage `json:"score"`
}

// surveySettings is what the survey intercept reads before showing the question.
type surveySettings struct {
	Namespace  string `json:"namespace"`
	Experiment string `json:"experiment"`
	Touchpoint string `json:"touchpoint,omitempty"`
	Metric     string `json:"metric"`
	ScaleMin   int    `json:"scaleMin"`
	ScaleMax   int    `json:"scaleMax"`
	Run        int32  `json:"run"`
	// Cookie is the assignment cookie's name.
	Cookie string `json:"cookie"`
	// Accepting is false when the experiment takes no answers now.
	Accepting bool `json:"accepting"`
}

// publicRequest is a request to the public endpoint as servePublic reads
// it, whichever HTTP server took it: net/http's handlers (publicSettings,
// publicResponses) or fasthttp's (fastPublic).
type publicRequest struct {
	method, ns, name string
	// header gives the first value of a header (Origin, Content-Type).
	header feedback.Header
	// last gives the last value of a header (the client IP header).
	last   func(name string) string
	remote func() string
	// body reads the body, at most limit bytes (more: *http.MaxBytesError).
	body func(limit int64) ([]byte, error)
}

// httpPublicRequest is r as servePublic reads it.
func httpPublicRequest(w http.ResponseWriter, r *http.Request) publicRequest {
	return publicRequest{
		method: r.Method, ns: r.PathValue("namespace"), name: r.PathValue("name"),
		header: r.Header, last: lastValue(r.Header), remote: func() string { return r.RemoteAddr },
		body: func(limit int64) ([]byte, error) { return readBody(w, r, limit) },
	}
}

// lastValue gives the last value of a header of h ("" if it has none).
func lastValue(h http.Header) func(string) string {
	return func(name string) string {
		if v := h.Values(name); len(v) > 0 {
			return v[len(v)-1]
		}
		return ""
	}
}

// clientKey identifies a client for its rate limit: its address, or the
// address the trusted proxy header names (IPv6 by /64, the block one
// customer usually holds). last gives the last value of a header.
func (s *Server) clientKey(remote string, last func(string) string) tokenDigest {
	host := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		host = h
	}
	if s.opts.ClientIPHeader != "" {
		if v := last(s.opts.ClientIPHeader); v != "" {
			parts := strings.Split(v, ",")
			if ip := strings.TrimSpace(parts[len(parts)-1]); net.ParseIP(ip) != nil {
				host = ip // the right-most address: the one the trusted proxy saw
			}
		}
	}
	if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
		host = ip.Mask(net.CIDRMask(64, 128)).String()
	}
	return tokenDigest(sha256.Sum256([]byte("client\x00" + host)))
}

// publicSettings serves GET and OPTIONS of /v1/public/.../experiments/{name}.
func (s *Server) publicSettings(w http.ResponseWriter, r *http.Request) {
	rep := s.servePublic(r.Context(), httpPublicRequest(w, r), http.MethodGet, func(_ context.Context, exp *cxv1.CXExperiment, accepting *Error) (reply, *feedbackError) {
		set, err := exp.Spec.Satisfaction.Settings()
		if err != nil {
			return reply{}, refuse(http.StatusConflict, reasonExperimentInactive, "experiment %s cannot take responses: %v", exp.Name, err)
		}
		out := surveySettings{Namespace: exp.Namespace, Experiment: exp.Name, Touchpoint: exp.Spec.Touchpoint,
			Metric: string(set.Metric), ScaleMin: set.ScoreMin, ScaleMax: set.ScoreMax, Run: exp.Status.Run,
			Cookie: assignment.CookieName(exp.Name), Accepting: accepting == nil}
		if g := exp.Spec.Traffic.GatewayAPI; g != nil && g.AssignmentCookie != nil && g.AssignmentCookie.Name != "" {
			out.Cookie = g.AssignmentCookie.Name
		}
		return reply{code: http.StatusOK, body: out, cacheControl: "no-store"}, nil
	})
	rep.write(w)
}

// publicResponses serves POST and OPTIONS of .../responses.
func (s *Server) publicResponses(w http.ResponseWriter, r *http.Request) {
	rep := s.servePublicResponses(r.Context(), httpPublicRequest(w, r))
	rep.write(w)
}

// servePublicResponses serves a request to .../responses.
func (s *Server) servePublicResponses(ctx context.Context, r publicRequest) reply {
	return s.servePublic(ctx, r, http.MethodPost, func(ctx context.Context, exp *cxv1.CXExperiment, accepting *Error) (reply, *feedbackError) {
		if accepting != nil {
			return reply{}, &feedbackError{Error: accepting, reason: reasonExperimentInactive}
		}
		return s.publicAnswer(ctx, r, exp)
	})
}

// servePublic runs the checks every public request shares, from the
// cheapest and least revealing on: method, rate limit, Origin present,
// experiment exists and takes browser answers, Origin allowed. Then it
// sets the CORS headers and runs serve (or answers a preflight).
func (s *Server) servePublic(ctx context.Context, r publicRequest, method string, serve func(context.Context, *cxv1.CXExperiment, *Error) (reply, *feedbackError)) reply {
	ns, name := r.ns, r.name
	source := ""
	var rep reply
	reject := func(e *feedbackError) reply {
		if (e.Code == http.StatusTooManyRequests || e.Code == http.StatusServiceUnavailable) && rep.retryAfter == "" {
			rep.retryAfter = "1"
		}
		countRejection(ns, source, e.reason)
		s.log.V(1).Info("browser answer rejected", "namespace", clip(ns), "experiment", clip(name), "code", e.Code,
			"reason", e.reason, "message", e.Message, "remote", r.remote(), "origin", clip(r.header.Get("Origin")))
		rep.code, rep.err, rep.body = e.Code, e.Error, nil
		return rep
	}
	preflight := r.method == http.MethodOptions
	if !preflight && r.method != method {
		rep.allow = method + ", OPTIONS"
		return reject(refuse(http.StatusMethodNotAllowed, "MethodNotAllowed", "method %s is not allowed; use %s", r.method, method))
	}
	if s.clients.limited() {
		if ok, wait := s.clients.allow(s.clientKey(r.remote(), r.last), s.clock.Now()); !ok {
			rep.retryAfter = strconv.Itoa(int(math.Ceil(max(wait.Seconds(), 1))))
			return reject(refuse(http.StatusTooManyRequests, reasonRateLimited, "too many requests from this client; retry after the Retry-After delay"))
		}
	}
	origin := r.header.Get("Origin")
	if origin == "" || origin == "null" {
		return reject(refuse(http.StatusForbidden, reasonMissingOrigin,
			"the Origin header is missing; this endpoint takes answers from web pages on the experiment's allowed origins (servers post to /v1/namespaces/{namespace}/experiments/{name}/responses with a token)"))
	}
	exp, accepting := s.experiment(ctx, ns, name)
	if exp == nil && accepting != nil && accepting.Code != http.StatusConflict {
		e := &feedbackError{Error: accepting, reason: reasonUnknownExperiment}
		if accepting.Code == http.StatusNotFound {
			e.Message = fmt.Sprintf("experiment %s not found in namespace %s; check data-namespace and data-experiment of the survey script", clip(name), clip(ns))
		} else {
			e.reason = reasonCommitFailed
		}
		return reject(e)
	}
	if exp == nil { // exists but not running: read it to check browser answers are on
		exp = &cxv1.CXExperiment{}
		if err := s.opts.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, exp); err != nil {
			return reject(&feedbackError{Error: accepting, reason: reasonExperimentInactive})
		}
	}
	source = "browser/" + name
	if !exp.Spec.Satisfaction.Source.Collector.BrowserEnabled() {
		return reject(refuse(http.StatusForbidden, reasonBrowserNotEnabled,
			"experiment %s does not take answers from browsers; set spec.satisfaction.source.collector.browser.allowedOrigins", name))
	}
	allowed, note, err := s.originAllowed(ctx, exp, origin)
	if err != nil {
		return reject(refuse(http.StatusServiceUnavailable, reasonCommitFailed, "%v", err))
	}
	if !allowed {
		return reject(refuse(http.StatusForbidden, reasonOriginNotAllowed,
			"origin %s may not post answers for experiment %s; add it to spec.satisfaction.source.collector.browser.allowedOrigins%s", clip(origin), name, note))
	}
	rep.allowOrigin = origin
	if preflight {
		rep.code, rep.preflight = http.StatusNoContent, method
		return rep
	}
	out, e := serve(ctx, exp, accepting)
	if e != nil {
		return reject(e)
	}
	out.allowOrigin = origin
	return out
}

// publicAnswer reads, verifies and commits one browser answer.
func (s *Server) publicAnswer(ctx context.Context, r publicRequest, exp *cxv1.CXExperiment) (reply, *feedbackError) {
	if ct := r.header.Get("Content-Type"); ct != ContentTypeJSON { // the type the survey intercept sends, without parameters
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != ContentTypeJSON {
			return reply{}, refuse(http.StatusUnsupportedMediaType, "UnsupportedMediaType", "Content-Type must be %s", ContentTypeJSON)
		}
	}
	body, err := r.body(maxPublicBody)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return reply{}, refuse(http.StatusRequestEntityTooLarge, reasonTooLarge, "the answer is larger than %d bytes", maxPublicBody)
		}
		return reply{}, refuse(http.StatusBadRequest, reasonInvalidAnswer, "could not read the body: %v", err)
	}
	a, err := decodePublicAnswer(body)
	if err != nil {
		return reply{}, refuse(http.StatusBadRequest, reasonInvalidAnswer, `the body must be one object {"assignment": "...", "respondent": "...", "score": 4}: %s`, jsonMessage(err, "; allowed fields are assignment, respondent, score"))
	}
	if a.Assignment == "" {
		return reply{}, refuse(http.StatusForbidden, reasonForgedAssignment, "assignment is missing: the page was not served through a route that sets the assignment cookie (spec.traffic.gatewayAPI.assignmentCookie); nothing was counted")
	}
	if !isRespondent(a.Respondent) {
		return reply{}, refuse(http.StatusUnprocessableEntity, reasonInvalidAnswer, "respondent must be 8..64 characters of A-Z, a-z, 0-9, '-' and '_' (an opaque random id)")
	}
	sc, serr := scaleOf(exp)
	if serr != nil {
		return reply{}, refuse(http.StatusConflict, reasonExperimentInactive, "experiment %s cannot take responses: %v", exp.Name, serr)
	}
	score, msg := parseScore(a.Score, sc)
	if msg != "" {
		return reply{}, refuse(http.StatusUnprocessableEntity, reasonScoreOffScale, "score: %s", msg)
	}
	as, ferr := s.verifyAssignment(ctx, exp, a.Assignment, "", http.StatusForbidden)
	if ferr != nil {
		return reply{}, ferr
	}
	resp, ferr := single(exp, "assignment.", as.Variant, as.Segment, int64(score), s.clock.Now(), as.Epoch)
	if ferr != nil {
		return reply{}, ferr
	}
	dup, ferr := s.commitOne(client.ObjectKeyFromObject(exp), exp.Status.Run, "browser\x00"+a.Respondent, resp)
	if ferr != nil {
		return reply{}, ferr
	}
	out := accepted{Accepted: 1}
	if dup {
		out = accepted{Duplicates: 1}
	}
	return reply{code: http.StatusAccepted, body: out}, nil
}

func orEOF(err error) error {
	if err == nil {
		return errors.New("unexpected data after the object")
	}
	return err
}

// originAllowed reports whether origin may post answers for exp. A Secret
// of allowedOriginsSecretRef that does not exist lists nothing; note then
// says so, for the refusal's message.
func (s *Server) originAllowed(ctx context.Context, exp *cxv1.CXExperiment, origin string) (allowed bool, note string, err error) {
	b := exp.Spec.Satisfaction.Source.Collector.Browser
	if slices.Contains(b.AllowedOrigins, origin) {
		return true, "", nil
	}
	if b.AllowedOriginsSecretRef == nil {
		return false, "", nil
	}
	list, missing, err := s.origins.get(ctx, exp.Namespace, b.AllowedOriginsSecretRef)
	if err != nil {
		return false, "", err
	}
	if missing {
		note = fmt.Sprintf(" (Secret %s of allowedOriginsSecretRef does not exist)", b.AllowedOriginsSecretRef.Name)
	}
	return slices.Contains(list, origin), note, nil
}

// originCache holds the origins listed in Secrets, re-read after originsTTL.
type originCache struct {
	reader client.Reader
	now    func() time.Time

	mu      sync.Mutex
	entries map[string]originEntry
}

type originEntry struct {
	origins []string
	missing bool
	err     error
	fetched time.Time
}

func (c *originCache) get(ctx context.Context, namespace string, ref *cxv1.SecretKeyRef) ([]string, bool, error) {
	k := namespace + "/" + ref.Name + "/" + ref.Key
	c.mu.Lock()
	e, ok := c.entries[k]
	c.mu.Unlock()
	if ok && c.now().Sub(e.fetched) < originsTTL {
		return e.origins, e.missing, e.err
	}
	e = originEntry{fetched: c.now()}
	sec := &corev1.Secret{}
	if err := c.reader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: ref.Name}, sec); apierrors.IsNotFound(err) {
		e.missing = true
	} else if err != nil {
		e.err = fmt.Errorf("could not read Secret %s of spec.satisfaction.source.collector.browser.allowedOriginsSecretRef; retry: %v", ref.Name, err)
	} else {
		for _, o := range strings.FieldsFunc(string(sec.Data[ref.Key]), func(r rune) bool { return r == ',' || r == '\n' || r == ' ' || r == '\r' || r == '\t' }) {
			e.origins = append(e.origins, strings.TrimRight(o, "/"))
		}
	}
	c.mu.Lock()
	if c.entries == nil || len(c.entries) > maxLimiters {
		c.entries = map[string]originEntry{}
	}
	c.entries[k] = e
	c.mu.Unlock()
	return e.origins, e.missing, e.err
}
