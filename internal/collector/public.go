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

// clientKey identifies a client for its rate limit: its address, or the
// address the trusted proxy header names (IPv6 by /64, the block one
// customer usually holds).
func (s *Server) clientKey(r *http.Request) tokenDigest {
	host := r.RemoteAddr
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		host = h
	}
	if s.opts.ClientIPHeader != "" {
		if v := r.Header.Values(s.opts.ClientIPHeader); len(v) > 0 {
			parts := strings.Split(v[len(v)-1], ",")
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

// public serves GET and OPTIONS of /v1/public/.../experiments/{name}.
func (s *Server) publicSettings(w http.ResponseWriter, r *http.Request) {
	s.publicRequest(w, r, http.MethodGet, func(_ context.Context, exp *cxv1.CXExperiment, accepting *Error) *feedbackError {
		set, err := exp.Spec.Satisfaction.Settings()
		if err != nil {
			return refuse(http.StatusConflict, reasonExperimentInactive, "experiment %s cannot take responses: %v", exp.Name, err)
		}
		out := surveySettings{Namespace: exp.Namespace, Experiment: exp.Name, Touchpoint: exp.Spec.Touchpoint,
			Metric: string(set.Metric), ScaleMin: set.ScoreMin, ScaleMax: set.ScoreMax, Run: exp.Status.Run,
			Cookie: assignment.CookieName(exp.Name), Accepting: accepting == nil}
		if g := exp.Spec.Traffic.GatewayAPI; g != nil && g.AssignmentCookie != nil && g.AssignmentCookie.Name != "" {
			out.Cookie = g.AssignmentCookie.Name
		}
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusOK, out)
		return nil
	})
}

// publicResponses serves POST and OPTIONS of .../responses.
func (s *Server) publicResponses(w http.ResponseWriter, r *http.Request) {
	s.publicRequest(w, r, http.MethodPost, func(ctx context.Context, exp *cxv1.CXExperiment, accepting *Error) *feedbackError {
		if accepting != nil {
			return &feedbackError{Error: accepting, reason: reasonExperimentInactive}
		}
		return s.publicAnswer(ctx, w, r, exp)
	})
}

// publicRequest runs the checks every public request shares, from the
// cheapest and least revealing on: method, rate limit, Origin present,
// experiment exists and takes browser answers, Origin allowed. Then it
// sets the CORS headers and runs serve (or answers a preflight).
func (s *Server) publicRequest(w http.ResponseWriter, r *http.Request, method string, serve func(context.Context, *cxv1.CXExperiment, *Error) *feedbackError) {
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	source := ""
	reject := func(e *feedbackError) {
		if e.Code == http.StatusTooManyRequests || e.Code == http.StatusServiceUnavailable {
			if w.Header().Get("Retry-After") == "" {
				w.Header().Set("Retry-After", "1")
			}
		}
		countRejection(ns, source, e.reason)
		s.log.V(1).Info("browser answer rejected", "namespace", clip(ns), "experiment", clip(name), "code", e.Code,
			"reason", e.reason, "message", e.Message, "remote", r.RemoteAddr, "origin", clip(r.Header.Get("Origin")))
		writeError(w, e.Error)
	}
	preflight := r.Method == http.MethodOptions
	if !preflight && r.Method != method {
		w.Header().Set("Allow", method+", OPTIONS")
		reject(refuse(http.StatusMethodNotAllowed, "MethodNotAllowed", "method %s is not allowed; use %s", r.Method, method))
		return
	}
	if ok, wait := s.clients.allow(s.clientKey(r), s.clock.Now()); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(max(wait.Seconds(), 1)))))
		reject(refuse(http.StatusTooManyRequests, reasonRateLimited, "too many requests from this client; retry after the Retry-After delay"))
		return
	}
	origin := r.Header.Get("Origin")
	if origin == "" || origin == "null" {
		reject(refuse(http.StatusForbidden, reasonMissingOrigin,
			"the Origin header is missing; this endpoint takes answers from web pages on the experiment's allowed origins (servers post to /v1/namespaces/{namespace}/experiments/{name}/responses with a token)"))
		return
	}
	ctx := r.Context()
	exp, accepting := s.experiment(ctx, ns, name)
	if exp == nil && accepting != nil && accepting.Code != http.StatusConflict {
		e := &feedbackError{Error: accepting, reason: reasonUnknownExperiment}
		if accepting.Code == http.StatusNotFound {
			e.Message = fmt.Sprintf("experiment %s not found in namespace %s; check data-namespace and data-experiment of the survey script", clip(name), clip(ns))
		} else {
			e.reason = reasonCommitFailed
		}
		reject(e)
		return
	}
	if exp == nil { // exists but not running: read it to check browser answers are on
		exp = &cxv1.CXExperiment{}
		if err := s.opts.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, exp); err != nil {
			reject(&feedbackError{Error: accepting, reason: reasonExperimentInactive})
			return
		}
	}
	source = "browser/" + name
	if !exp.Spec.Satisfaction.Source.Collector.BrowserEnabled() {
		reject(refuse(http.StatusForbidden, reasonBrowserNotEnabled,
			"experiment %s does not take answers from browsers; set spec.satisfaction.source.collector.browser.allowedOrigins", name))
		return
	}
	allowed, note, err := s.originAllowed(ctx, exp, origin)
	if err != nil {
		reject(refuse(http.StatusServiceUnavailable, reasonCommitFailed, "%v", err))
		return
	}
	if !allowed {
		reject(refuse(http.StatusForbidden, reasonOriginNotAllowed,
			"origin %s may not post answers for experiment %s; add it to spec.satisfaction.source.collector.browser.allowedOrigins%s", clip(origin), name, note))
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	if preflight {
		h.Set("Access-Control-Allow-Methods", method)
		h.Set("Access-Control-Allow-Headers", "Content-Type")
		h.Set("Access-Control-Max-Age", preflightMaxAge)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if e := serve(ctx, exp, accepting); e != nil {
		reject(e)
	}
}

// publicAnswer reads, verifies and commits one browser answer.
func (s *Server) publicAnswer(ctx context.Context, w http.ResponseWriter, r *http.Request, exp *cxv1.CXExperiment) *feedbackError {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != ContentTypeJSON {
		return refuse(http.StatusUnsupportedMediaType, "UnsupportedMediaType", "Content-Type must be %s", ContentTypeJSON)
	}
	body, err := readBody(w, r, maxPublicBody)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return refuse(http.StatusRequestEntityTooLarge, reasonTooLarge, "the answer is larger than %d bytes", maxPublicBody)
		}
		return refuse(http.StatusBadRequest, reasonInvalidAnswer, "could not read the body: %v", err)
	}
	a, err := decodePublicAnswer(body)
	if err != nil {
		return refuse(http.StatusBadRequest, reasonInvalidAnswer, `the body must be one object {"assignment": "...", "respondent": "...", "score": 4}: %s`, jsonMessage(err, "; allowed fields are assignment, respondent, score"))
	}
	if a.Assignment == "" {
		return refuse(http.StatusForbidden, reasonForgedAssignment, "assignment is missing: the page was not served through a route that sets the assignment cookie (spec.traffic.gatewayAPI.assignmentCookie); nothing was counted")
	}
	if !isRespondent(a.Respondent) {
		return refuse(http.StatusUnprocessableEntity, reasonInvalidAnswer, "respondent must be 8..64 characters of A-Z, a-z, 0-9, '-' and '_' (an opaque random id)")
	}
	sc, serr := scaleOf(exp)
	if serr != nil {
		return refuse(http.StatusConflict, reasonExperimentInactive, "experiment %s cannot take responses: %v", exp.Name, serr)
	}
	score, msg := parseScore(a.Score, sc)
	if msg != "" {
		return refuse(http.StatusUnprocessableEntity, reasonScoreOffScale, "score: %s", msg)
	}
	as, ferr := s.verifyAssignment(ctx, exp, a.Assignment, "", http.StatusForbidden)
	if ferr != nil {
		return ferr
	}
	resp, ferr := single(exp, "assignment.", as.Variant, as.Segment, int64(score), s.clock.Now(), as.Epoch)
	if ferr != nil {
		return ferr
	}
	dup, ferr := s.commitOne(client.ObjectKeyFromObject(exp), exp.Status.Run, "browser\x00"+a.Respondent, resp)
	if ferr != nil {
		return ferr
	}
	out := accepted{Accepted: 1}
	if dup {
		out = accepted{Duplicates: 1}
	}
	writeJSON(w, http.StatusAccepted, out)
	return nil
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
