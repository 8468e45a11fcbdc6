package collector

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"golang.org/x/time/rate"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/assignment"
	"github.com/rapport-dev/rapport/internal/fastserve"
	"github.com/rapport-dev/rapport/internal/metrics"
)

// RBAC the collector needs; `make manifests` collects these markers.
// cxexperiments/finalizers: update lets the tally's ownerReference set
// blockOwnerDeletion where the OwnerReferencesPermissionEnforcement plugin runs.
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups=cx.rapport.dev,resources=cxexperiments,verbs=get;list;watch
// +kubebuilder:rbac:groups=cx.rapport.dev,resources=cxexperiments/finalizers,verbs=update
// +kubebuilder:rbac:groups=cx.rapport.dev,resources=responsetallies,verbs=get;list;watch;create;update

// Defaults of Options.
const (
	DefaultAddr         = ":8082"
	DefaultMaxBatch     = 1000
	DefaultMaxBodyBytes = 1 << 20
	DefaultRateLimit    = 200
	DefaultRateBurst    = 400
	// DefaultMaxPending is how many responses may wait per experiment for
	// the next write; past it requests get 503 until the write lands.
	DefaultMaxPending = 10000
	// DefaultWriteSlots bounds concurrent tally writes across experiments,
	// which bounds the collector's load on the API server.
	DefaultWriteSlots = 8
)

const (
	// maxLimiters bounds the per-token rate-limiter state.
	maxLimiters = 10000
	// maxKeyLen bounds the Idempotency-Key header.
	maxKeyLen       = 128
	shutdownTimeout = 30 * time.Second
	// maxHeaderBytes bounds a request's line and headers.
	maxHeaderBytes = 16 << 10
	// bufferedBodyBytes: fasthttp's MaxRequestBodySize, which with
	// StreamRequestBody only bounds its read-ahead (itself at most 8 KiB).
	bufferedBodyBytes = 64 << 10
	// bodyTimeout bounds reading a request's body, writeTimeout writing
	// its response.
	bodyTimeout  = 30 * time.Second
	writeTimeout = 30 * time.Second
)

// Options configures the collector. Zero values take the defaults above.
type Options struct {
	// Addr is the listen address, e.g. ":8090".
	Addr string
	// Client reads CXExperiments and feedback-token Secrets (cached in a
	// manager) and writes ResponseTallies.
	Client client.Client
	// APIReader reads uncached: the experiment at every tally write (the
	// epoch and run its responses are counted in), the ResponseTally after
	// a write conflict, and the tally to answer a keyed retry after the
	// experiment ended.
	// Defaults to Client.
	APIReader client.Reader
	// Informers, when set, are the informers of Client's cache (a
	// manager's GetCache()): the FeedbackSource and the experiment that
	// every answer needs are then read from their indexers, without the
	// cached client's per-call work. Without it they are read through
	// Client.
	Informers Informers
	// MaxBatch is the most responses one request may carry.
	MaxBatch int
	// MaxBodyBytes is the largest request body.
	MaxBodyBytes int64
	// RateLimit is the sustained requests per second per token (negative:
	// unlimited); RateBurst the bucket size.
	RateLimit float64
	RateBurst int
	// MaxPending is the most responses waiting per experiment for a write.
	MaxPending int
	// TLSCertFile and TLSKeyFile turn on TLS. The files are watched
	// (controller-runtime's certwatcher: file events, and a poll every
	// 10s), so rotated certificates apply without a restart; a broken
	// rotation keeps the last good pair.
	TLSCertFile, TLSKeyFile string
	// HeaderTimeout bounds reading a request's headers, against slow
	// clients (default 5s).
	HeaderTimeout time.Duration
	// PublicRateLimit is the sustained requests per second per client
	// address at the public endpoint and for the survey's settings
	// (negative: unlimited); PublicRateBurst the bucket size.
	PublicRateLimit float64
	PublicRateBurst int
	// ClientIPHeader names a header set by a trusted proxy in front of the
	// collector whose right-most address is the client's, such as
	// X-Forwarded-For. Empty: the connection's address.
	ClientIPHeader string
	// SurveyMonkeyAPI is the base URL of the SurveyMonkey API the collector
	// reads answers from (default DefaultSurveyMonkeyAPI).
	SurveyMonkeyAPI string
	// HTTPClient calls providers' APIs (default: a 10s timeout).
	HTTPClient *http.Client
	// KeysInList keeps the idempotency-key digests in the deprecated
	// spec.recentKeys list (at most 1,024) instead of
	// spec.recentKeyDigests, for a ResponseTally CRD that predates the
	// latter: the API server would drop the field, and every retry would
	// count again. The manager sets it when TallySchemaHasDigests says so.
	KeysInList bool
	// Clock stamps commits; defaults to the real clock.
	Clock clock.PassiveClock
	// Log receives the audit lines of rejected batches and commit errors.
	Log logr.Logger
}

// Server is the feedback collector: an HTTP API that validates batches of
// satisfaction responses and group-commits their counts into ResponseTally
// objects. It is a manager.Runnable that runs on every replica.
type Server struct {
	opts     Options
	commit   *committer
	limits   *limiters
	certs    *certwatcher.CertWatcher
	handler  http.Handler
	clock    clock.PassiveClock
	log      logr.Logger
	maxBatch int
	maxBody  int64

	// The survey intercept, the public endpoint and webhooks.
	survey     *surveyAsset
	clients    *limiters // per client address, at the public endpoint
	keys       *assignment.Keys
	origins    *originCache
	secrets    *secretCache
	mappings   *mappingCache
	statuses   *statusReporter
	httpClient *http.Client

	// native serves webhooks and browser answers without the net/http
	// bridge (serveNative).
	native fastserve.Native

	// Read for every answer.
	sources     *indexed[cxv1.FeedbackSource, *cxv1.FeedbackSource]
	experiments *indexed[cxv1.CXExperiment, *cxv1.CXExperiment]
}

// New checks opts, applies defaults and returns a Server.
func New(opts Options) (*Server, error) {
	if opts.Client == nil {
		return nil, errors.New("collector: Options.Client is required")
	}
	if opts.APIReader == nil {
		opts.APIReader = opts.Client
	}
	if opts.Addr == "" {
		opts.Addr = DefaultAddr
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = DefaultMaxBatch
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.RateLimit == 0 {
		opts.RateLimit = DefaultRateLimit
	}
	if opts.RateBurst <= 0 {
		opts.RateBurst = DefaultRateBurst
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = DefaultMaxPending
	}
	if opts.HeaderTimeout <= 0 {
		opts.HeaderTimeout = 5 * time.Second
	}
	if opts.MaxPending < opts.MaxBatch {
		return nil, fmt.Errorf("collector: MaxPending (%d) must be at least MaxBatch (%d)", opts.MaxPending, opts.MaxBatch)
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.Log.GetSink() == nil {
		opts.Log = logr.Discard()
	}
	if opts.PublicRateLimit == 0 {
		opts.PublicRateLimit = DefaultPublicRateLimit
	}
	if opts.PublicRateBurst <= 0 {
		opts.PublicRateBurst = DefaultPublicRateBurst
	}
	if opts.SurveyMonkeyAPI == "" {
		opts.SurveyMonkeyAPI = DefaultSurveyMonkeyAPI
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	lim := rate.Limit(opts.RateLimit)
	if opts.RateLimit < 0 {
		lim = rate.Inf
	}
	publicLim := rate.Limit(opts.PublicRateLimit)
	if opts.PublicRateLimit < 0 {
		publicLim = rate.Inf
	}
	survey, err := newSurveyAsset()
	if err != nil {
		return nil, fmt.Errorf("collector: survey script: %w", err)
	}
	s := &Server{
		opts:     opts,
		commit:   newCommitter(opts.Client, opts.APIReader, opts.Clock, opts.Log, opts.MaxPending),
		limits:   newLimiters(lim, opts.RateBurst, maxLimiters),
		clock:    opts.Clock,
		log:      opts.Log,
		maxBatch: opts.MaxBatch,
		maxBody:  opts.MaxBodyBytes,

		survey:     survey,
		clients:    newLimiters(publicLim, opts.PublicRateBurst, maxLimiters),
		keys:       &assignment.Keys{Reader: opts.APIReader, Clock: opts.Clock},
		origins:    &originCache{reader: opts.APIReader, now: opts.Clock.Now},
		secrets:    &secretCache{reader: opts.APIReader, now: opts.Clock.Now},
		mappings:   &mappingCache{},
		statuses:   &statusReporter{client: opts.Client, log: opts.Log},
		httpClient: opts.HTTPClient,

		sources: &indexed[cxv1.FeedbackSource, *cxv1.FeedbackSource]{
			informers: opts.Informers, client: opts.Client,
			resource: cxv1.GroupVersion.WithResource("feedbacksources").GroupResource(),
		},
		experiments: &indexed[cxv1.CXExperiment, *cxv1.CXExperiment]{
			informers: opts.Informers, client: opts.Client,
			resource: cxv1.GroupVersion.WithResource("cxexperiments").GroupResource(),
		},
	}
	s.commit.keysInList = opts.KeysInList
	s.native = s.serveNative
	if (opts.TLSCertFile == "") != (opts.TLSKeyFile == "") {
		return nil, errors.New("collector: set both TLSCertFile and TLSKeyFile, or neither")
	}
	if opts.TLSCertFile != "" {
		c, err := certwatcher.New(opts.TLSCertFile, opts.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("collector: TLS key pair: %w", err)
		}
		s.certs = c
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/namespaces/{namespace}/experiments/{name}/responses", s.responses)
	mux.HandleFunc("/v1/namespaces/{namespace}/experiments/{name}/verdict", s.verdict)
	mux.HandleFunc("/v1/namespaces/{namespace}/experiments/{name}/flagger/{hook}", s.flaggerHook)
	mux.HandleFunc("/v1/namespaces/{namespace}/sources/{name}/webhook", s.webhook)
	mux.HandleFunc("/v1/public/namespaces/{namespace}/experiments/{name}", s.publicSettings)
	mux.HandleFunc("/v1/public/namespaces/{namespace}/experiments/{name}/responses", s.publicResponses)
	mux.HandleFunc("/v1/survey.js", s.survey.serve)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, errorf(http.StatusNotFound, "no such endpoint %s; post responses to /v1/namespaces/{namespace}/experiments/{name}/responses", clip(r.URL.Path)))
	})
	s.handler = countRequests(mux)
	return s, nil
}

// Handler returns the collector's HTTP handler (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.handler }

// NeedLeaderElection is false: every replica accepts feedback; optimistic
// concurrency on the tally keeps replicas from losing or doubling counts.
func (s *Server) NeedLeaderElection() bool { return false }

// Start listens on Options.Addr and serves until ctx is done.
func (s *Server) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		return fmt.Errorf("collector: listen on %s: %w", s.opts.Addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx is done, then shuts down gracefully: requests
// in flight finish, including their commits, within 30 seconds.
//
// The HTTP/1.1 server is fasthttp's, through internal/fastserve: an answer
// held for its commit costs it a fraction of what it costs net/http's
// (docs/benchmarks.md). The handlers are net/http handlers; webhooks and
// browser answers are served with fasthttp's types directly (serveNative),
// by the same code.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	// fasthttp sets four deadlines per request; most bound no read.
	ln = fastserve.LazyDeadlines(ln)
	if s.certs != nil {
		go func() {
			if err := s.certs.Start(ctx); err != nil {
				s.log.Error(err, "watching the collector's TLS certificate; serving the last one loaded")
			}
		}()
		ln = tls.NewListener(ln, &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: s.certs.GetCertificate})
	}
	srv := &fasthttp.Server{
		Handler: fastserve.Handler(context.Background(), s.handler, s.log, serverError, s.native),
		// From a request's first byte to the end of its headers, against
		// slow clients; then bodyTimeout for the body.
		ReadTimeout: s.opts.HeaderTimeout,
		HeaderReceived: func(*fasthttp.RequestHeader) fasthttp.RequestConfig {
			return fasthttp.RequestConfig{ReadTimeout: bodyTimeout}
		},
		// Writing the response; the wait for the commit is not in it.
		WriteTimeout: writeTimeout,
		IdleTimeout:  120 * time.Second,
		// Also the largest request line and headers.
		ReadBufferSize: maxHeaderBytes,
		// Bodies reach the handlers as streams (fasthttp reads ahead at
		// most 8 KiB), so each handler's own limit answers with 413.
		MaxRequestBodySize: bufferedBodyBytes,
		StreamRequestBody:  true,
		// fasthttp would otherwise read a multipart body whole (to memory
		// and temporary files) before any handler or limit.
		DisablePreParseMultipartForm: true,
		NoDefaultServerHeader:        true,
		NoDefaultContentType:         true,
		// Answers during shutdown close their connections.
		CloseOnShutdown: true,
		ErrorHandler:    serverError,
		Logger:          fasthttpLogger{s.log},
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	statusDone := make(chan struct{})
	sctxStatus, stopStatus := context.WithCancel(context.Background())
	go func() { defer close(statusDone); s.statuses.run(sctxStatus) }()
	defer func() { stopStatus(); <-statusDone }()
	s.log.Info("feedback collector listening", "addr", ln.Addr().String(), "tls", s.certs != nil)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	err := srv.ShutdownWithContext(sctx)
	// A shutdown before fasthttp's Serve registered the listener finds
	// nothing to close; closing it here ends that Serve too.
	_ = ln.Close()
	if serr := <-errc; serr != nil && err == nil {
		err = serr
	}
	return err
}

// serverError answers what the HTTP server refuses before a handler runs
// (a malformed request, headers over the limit, a read timeout) with the
// collector's JSON error.
func serverError(ctx *fasthttp.RequestCtx, err error) {
	code, msg := http.StatusBadRequest, "malformed HTTP request"
	var small *fasthttp.ErrSmallBuffer
	var timeout interface{ Timeout() bool }
	var bad *fastserve.BadRequestError
	switch {
	case errors.As(err, &bad):
		msg = bad.Reason
	case errors.As(err, &small):
		code, msg = http.StatusRequestHeaderFieldsTooLarge, fmt.Sprintf("request line and headers over %d bytes", maxHeaderBytes)
	case errors.As(err, &timeout) && timeout.Timeout():
		code, msg = http.StatusRequestTimeout, "the request was not read in time"
	}
	ctx.Response.Reset()
	ctx.SetContentType("application/json")
	ctx.SetStatusCode(code)
	body, _ := json.Marshal(map[string]string{"error": msg})
	ctx.SetBody(append(body, '\n'))
	ctx.SetConnectionClose()
}

// fasthttpLogger passes fasthttp's own messages (connections it could not
// serve) to the log at debug level.
type fasthttpLogger struct{ log logr.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.V(1).Info("HTTP server", "message", fmt.Sprintf(format, args...))
}

// accepted is the 202 body.
type accepted struct {
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
}

// responses handles POST .../experiments/{name}/responses. Checks run from
// cheapest and least revealing to most expensive: nothing about an
// experiment is revealed before the token is known good for its namespace.
func (s *Server) responses(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	var digest tokenDigest
	reject := func(reason string, e *Error) {
		if e.Code == http.StatusServiceUnavailable || e.Code == http.StatusTooManyRequests {
			if w.Header().Get("Retry-After") == "" {
				w.Header().Set("Retry-After", "1")
			}
		}
		token := "none" // no token presented
		if digest != (tokenDigest{}) {
			token = digest.short()
		}
		s.log.Info("feedback batch rejected", "namespace", clip(ns), "experiment", clip(name),
			"code", e.Code, "reason", reason, "message", e.Message, "remote", r.RemoteAddr, "token", token)
		writeError(w, e)
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		reject("MethodNotAllowed", errorf(http.StatusMethodNotAllowed, "method %s is not allowed; POST the responses", r.Method))
		return
	}
	ctx := r.Context()
	digest, aerr := authenticate(ctx, s.opts.Client, ns, r.Header.Get("Authorization"))
	if aerr != nil {
		reason := map[int]string{http.StatusUnauthorized: "Unauthorized", http.StatusForbidden: "WrongNamespace"}[aerr.Code]
		if reason == "" {
			reason = "TokensUnavailable"
		}
		reject(reason, aerr)
		return
	}
	if ok, wait := s.limits.allow(digest, s.clock.Now()); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(max(wait.Seconds(), 1)))))
		reject("RateLimited", errorf(http.StatusTooManyRequests, "more than %g requests per second with this token; retry after the Retry-After delay, or send larger batches", s.opts.RateLimit))
		return
	}
	if _, err := parseContentType(r.Header.Get("Content-Type")); err != nil {
		reject("UnsupportedMediaType", err)
		return
	}
	keys := r.Header.Values("Idempotency-Key")
	if msg := checkKey(keys); msg != "" {
		reject("InvalidIdempotencyKey", errorf(http.StatusBadRequest, "%s", msg))
		return
	}
	exp, eerr := s.checkedExperiment(ctx, ns, name)
	if eerr != nil {
		if exp != nil && len(keys) == 1 && s.committedBeforeEnd(ctx, w, r, exp, keys[0]) {
			return
		}
		reject(reasonFor(eerr.Code, "ExperimentUnavailable"), eerr)
		return
	}
	resp, reason, rerr := s.readBatch(w, r, exp)
	if rerr != nil {
		reject(reason, rerr)
		return
	}
	b := &batch{run: exp.Status.Run, responses: resp}
	if len(keys) == 1 {
		b.key = KeyDigest(ns, name, exp.Status.Run, keys[0])
	}
	if err := s.commit.submit(types.NamespacedName{Namespace: ns, Name: name}, b); err != nil {
		var e *Error
		if !errors.As(err, &e) {
			e = errorf(http.StatusServiceUnavailable, "%v", err)
		}
		reject(reasonFor(e.Code, "CommitFailed"), e)
		return
	}
	out := accepted{Accepted: len(resp)}
	if b.duplicate {
		out = accepted{Duplicates: len(resp)}
	}
	writeJSON(w, http.StatusAccepted, out)
}

// experiment returns the experiment if it takes collector responses now,
// from the cache. For callers that have authenticated the request (a token,
// a provider's signature), use checkedExperiment.
func (s *Server) experiment(ctx context.Context, ns, name string) (*cxv1.CXExperiment, *Error) {
	return s.lookupExperiment(ctx, ns, name, false)
}

// checkedExperiment is experiment, except that "not found" and "not started
// yet" are checked with the API server before they are answered: the cache
// may not have seen the experiment, or its start, yet, and a client that was
// just told it runs must not be refused for that. Only authenticated,
// rate-limited requests get it, so that anonymous requests for experiments
// that do not exist cannot make the collector read the API server.
func (s *Server) checkedExperiment(ctx context.Context, ns, name string) (*cxv1.CXExperiment, *Error) {
	return s.lookupExperiment(ctx, ns, name, true)
}

// lookupExperiment reads the experiment from the manager's cache (its
// informer's indexer: indexed) without copying it (a copy of a whole
// experiment was a tenth of a browser answer's CPU): the returned
// experiment shares its maps, slices and pointers with the cache, and
// nothing in this package may change it. The collector's integration
// suite checks that every cached object still equals the API server's
// version of it.
func (s *Server) lookupExperiment(ctx context.Context, ns, name string, check bool) (*cxv1.CXExperiment, *Error) {
	notFound := func() *Error {
		return errorf(http.StatusNotFound, "experiment %s not found in namespace %s; check the name in the URL", clip(name), clip(ns))
	}
	// Names that cannot exist are answered without a lookup.
	if !mayExist(ns, name) {
		return nil, notFound()
	}
	nn := types.NamespacedName{Namespace: ns, Name: name}
	exp, err := s.experiments.get(ctx, nn)
	if check && (apierrors.IsNotFound(err) || (err == nil && (exp.Status.Phase == "" || exp.Status.Phase == cxv1.PhasePending))) {
		// Only these refusals are checked: an ended experiment that the
		// cache still shows running is refused by the commit, which reads
		// the API server's phase (committer.refuseEnded).
		exp = &cxv1.CXExperiment{}
		err = s.opts.APIReader.Get(ctx, nn, exp)
	}
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil, notFound()
		}
		s.log.Error(err, "reading experiment", "namespace", ns, "experiment", name)
		return nil, errorf(http.StatusServiceUnavailable, "could not read experiment %s; retry", name)
	}
	if exp.Spec.Satisfaction.Source.Collector == nil {
		return nil, errorf(http.StatusConflict, "experiment %s reads satisfaction from a SatisfactionMetric, not from the collector; set spec.satisfaction.source to collector: {} to post responses", name)
	}
	switch exp.Status.Phase {
	case cxv1.PhaseProgressing, cxv1.PhasePaused:
		return exp, nil
	case "":
		return nil, errorf(http.StatusConflict, "experiment %s has not started yet (no phase); responses are accepted while it is Progressing or Paused", name)
	}
	ended := errorf(http.StatusConflict, "experiment %s is %s; responses are accepted while it is Progressing or Paused", name, exp.Status.Phase)
	if exp.Status.Phase.Terminal() {
		return exp, ended // for committedBeforeEnd
	}
	return nil, ended
}

// committedBeforeEnd answers the retry of a batch that was committed before
// the experiment ended, whose client did not get the 202 (a timeout, a lost
// connection): 202 with duplicates, as during the run, so that a client
// retrying with the same Idempotency-Key always learns the outcome. It
// reports false, having written nothing, for any other batch: the caller
// refuses it with 409. The tally is read from the API server, since the
// cache may not hold the last commit yet.
func (s *Server) committedBeforeEnd(ctx context.Context, w http.ResponseWriter, r *http.Request, exp *cxv1.CXExperiment, key string) bool {
	t := &cxv1.ResponseTally{}
	if err := s.opts.APIReader.Get(ctx, client.ObjectKeyFromObject(exp), t); err != nil {
		return false
	}
	if !holdsKey(t, exp, KeyDigest(exp.Namespace, exp.Name, exp.Status.Run, key)) {
		return false
	}
	resp, _, rerr := s.readBatch(w, r, exp)
	if rerr != nil {
		return false
	}
	writeJSON(w, http.StatusAccepted, accepted{Duplicates: len(resp)})
	return true
}

// readBody reads r's body as io.ReadAll(http.MaxBytesReader(w, r.Body,
// limit)) does, into a buffer sized from Content-Length when that is
// declared and within limit (io.ReadAll starts at 512 bytes and grows).
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	body := http.MaxBytesReader(w, r.Body, limit)
	if r.ContentLength < 0 || r.ContentLength > limit {
		return io.ReadAll(body)
	}
	var buf bytes.Buffer
	buf.Grow(int(r.ContentLength) + bytes.MinRead) // ReadFrom reads into MinRead spare bytes, so it does not grow
	_, err := buf.ReadFrom(body)
	return buf.Bytes(), err
}

// readBatch reads the request's body (at most maxBody bytes) and decodes it
// for exp. On failure it returns the rejection and its audit reason.
func (s *Server) readBatch(w http.ResponseWriter, r *http.Request, exp *cxv1.CXExperiment) ([]Response, string, *Error) {
	if r.ContentLength > s.maxBody {
		return nil, "TooLarge", errorf(http.StatusRequestEntityTooLarge, "the body is %d bytes, at most %d are accepted; split the batch", r.ContentLength, s.maxBody)
	}
	body, err := readBody(w, r, s.maxBody)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, "TooLarge", errorf(http.StatusRequestEntityTooLarge, "the body is larger than %d bytes; split the batch", s.maxBody)
		}
		return nil, "ReadFailed", errorf(http.StatusBadRequest, "could not read the body: %v", err)
	}
	resp, err := Decode(r.Header.Get("Content-Type"), body, exp, s.maxBatch)
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			e = errorf(http.StatusBadRequest, "%v", err)
		}
		return nil, reasonFor(e.Code, "Invalid"), e
	}
	return resp, "", nil
}

// reasonFor names a rejection for the audit log by its status code;
// fallback names the others (400, 503).
func reasonFor(code int, fallback string) string {
	switch code {
	case http.StatusNotFound:
		return "ExperimentNotFound"
	case http.StatusConflict:
		return "ExperimentNotAccepting" // not running, not on the collector, or its run moved on
	case http.StatusRequestEntityTooLarge:
		return "TooLarge"
	case http.StatusUnsupportedMediaType:
		return "UnsupportedMediaType"
	}
	return fallback
}

// checkKey validates the Idempotency-Key header values.
func checkKey(values []string) string {
	switch {
	case len(values) == 0:
		return ""
	case len(values) > 1:
		return "Idempotency-Key is sent more than once; send one key per batch"
	case values[0] == "" || len(values[0]) > maxKeyLen:
		return fmt.Sprintf("Idempotency-Key must be 1..%d characters; a UUID works", maxKeyLen)
	}
	for _, c := range []byte(values[0]) {
		if c < 0x20 || c > 0x7e {
			return "Idempotency-Key must be printable ASCII; a UUID works"
		}
	}
	return ""
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	h := w.Header()
	h["Content-Type"], h["X-Content-Type-Options"] = jsonContentType, noSniff
	w.WriteHeader(code)
	_, _ = w.Write(jsonBody(v))
}

// jsonBody is v as the collector's JSON answers send it: as json.Encoder
// writes it (with its newline), an accepted answer without reflection;
// nothing if v cannot be encoded.
func jsonBody(v any) []byte {
	if a, ok := v.(accepted); ok {
		return a.appendJSON(make([]byte, 0, 48))
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return append(b, '\n')
}

// The values of writeJSON's headers, shared: a header's values are replaced
// (Header.Set), never written to.
var jsonContentType, noSniff = []string{"application/json"}, []string{"nosniff"}

// appendJSON appends a as json.Encoder writes it, without reflection: the
// answer of every accepted request.
func (a accepted) appendJSON(b []byte) []byte {
	b = append(b, `{"accepted":`...)
	b = strconv.AppendInt(b, int64(a.Accepted), 10)
	b = append(b, `,"duplicates":`...)
	b = strconv.AppendInt(b, int64(a.Duplicates), 10)
	return append(b, "}\n"...)
}

func writeError(w http.ResponseWriter, e *Error) {
	writeJSON(w, e.Code, errorJSON(e))
}

// errorJSON is the body of a rejection: {"error": message}.
func errorJSON(e *Error) any { return map[string]string{"error": e.Message} }

// countRequests counts every request by status code (a bounded label).
func countRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(rec, r)
		countRequest(rec.code)
	})
}

// requestCounters are CollectorRequests' counters of status codes 100-599,
// found once: every request counts its status.
var requestCounters [500]atomic.Pointer[prometheus.Counter]

// countRequest counts a request answered with code.
func countRequest(code int) {
	if code < 100 || code > 599 {
		metrics.CollectorRequests.WithLabelValues(strconv.Itoa(code)).Inc()
		return
	}
	p := &requestCounters[code-100]
	c := p.Load()
	if c == nil {
		found := metrics.CollectorRequests.WithLabelValues(strconv.Itoa(code))
		c = &found
		p.Store(c)
	}
	(*c).Inc()
}

type statusRecorder struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wrote {
		s.code, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
