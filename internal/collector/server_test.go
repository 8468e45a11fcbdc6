package collector

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/metrics"
	"github.com/rapport-dev/rapport/test/utils"
)

func tokenSecret(ns, name, token string, labelled bool) *corev1.Secret {
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Data:       map[string][]byte{cxv1.FeedbackTokenKey: []byte(token)},
	}
	if labelled {
		s.Labels = map[string]string{cxv1.LabelFeedbackToken: "true"}
	}
	return s
}

func TestAuthenticate(t *testing.T) {
	c := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(
		tokenSecret("shop", "feedback", "s3cret\n", true), // a trailing newline from a file
		tokenSecret("shop", "unlabelled", "not-a-feedback-token", false),
		tokenSecret("other", "feedback", "other-token", true),
	).Build()
	for _, tc := range []struct {
		header string
		code   int // 0: authenticated
	}{
		{"Bearer s3cret", 0},
		{"bearer s3cret", 0},
		{"", http.StatusUnauthorized},
		{"Bearer ", http.StatusUnauthorized},
		{"Basic s3cret", http.StatusUnauthorized},
		{"s3cret", http.StatusUnauthorized},
		{"Bearer s3cre", http.StatusUnauthorized},
		{"Bearer not-a-feedback-token", http.StatusUnauthorized},
		{"Bearer other-token", http.StatusForbidden},
		{"Bearer " + strings.Repeat("x", maxTokenBytes+1), http.StatusUnauthorized},
	} {
		d, err := authenticate(context.Background(), c, "shop", tc.header)
		code := 0
		if err != nil {
			code = err.Code
		}
		if code != tc.code {
			t.Errorf("authenticate(%.20q) = %d (%v), want %d", tc.header, code, err, tc.code)
		}
		if tc.code == 0 && d.short() == "" {
			t.Errorf("no digest for an authenticated token")
		}
	}
}

func TestLimiters(t *testing.T) {
	l := newLimiters(1, 2, 3)
	now := testNow
	key := tokenDigest{1}
	for i := range 2 {
		if ok, _ := l.allow(key, now); !ok {
			t.Fatalf("request %d within the burst was limited", i+1)
		}
	}
	ok, wait := l.allow(key, now)
	if ok || wait <= 0 || wait > time.Second {
		t.Fatalf("third request: ok %v wait %v, want limited for at most 1s", ok, wait)
	}
	if ok, _ := l.allow(key, now.Add(time.Second)); !ok {
		t.Fatal("a token refilled after 1s is still limited")
	}
	// Ten thousand other tokens cannot grow the state past the bound.
	for i := range 10000 {
		l.allow(tokenDigest{byte(i), byte(i >> 8), 7}, now)
	}
	if n := l.len(); n != 3 {
		t.Fatalf("%d limiters kept, want the bound 3", n)
	}
	if ok, _ := newLimiters(rate.Inf, 1, 1).allow(key, now); !ok {
		t.Fatal("an unlimited limiter limited")
	}
}

// newUnitServer is a Server over a fake API holding one running experiment
// (CSAT, no segments) and the token "s3cret" for namespace shop.
func newUnitServer(t *testing.T, opts Options) (*Server, client.Client) {
	exp := runningExperiment()
	c := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(exp, tokenSecret("shop", "feedback", "s3cret", true)).Build()
	opts.Client = c
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

func post(t *testing.T, h http.Handler, path, body string, header map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	r.Header.Set("Authorization", "Bearer s3cret")
	r.Header.Set("Content-Type", ContentTypeJSON)
	for k, v := range header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestHandlerRateLimit(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(testNow)
	s, _ := newUnitServer(t, Options{RateLimit: 1, RateBurst: 2, Clock: clk})
	path := "/v1/namespaces/shop/experiments/checkout/responses"
	body := `{"responses":[{"variant":"control","score":5}]}`
	limited := metricValue(t, metrics.CollectorRequests.WithLabelValues("429"))
	for i := range 2 {
		if w := post(t, s.Handler(), path, body, nil); w.Code != http.StatusAccepted {
			t.Fatalf("request %d: %d %s", i+1, w.Code, w.Body)
		}
	}
	w := post(t, s.Handler(), path, body, nil)
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "1" {
		t.Fatalf("third request: %d Retry-After %q, want 429 with Retry-After 1", w.Code, w.Header().Get("Retry-After"))
	}
	if !strings.Contains(w.Body.String(), `"error":"more than 1 requests per second`) {
		t.Fatalf("429 body: %s", w.Body)
	}
	if got := metricValue(t, metrics.CollectorRequests.WithLabelValues("429")) - limited; got != 1 {
		t.Fatalf("collector requests{code=429} grew by %v, want 1", got)
	}
	clk.SetTime(testNow.Add(time.Second))
	if w := post(t, s.Handler(), path, body, nil); w.Code != http.StatusAccepted {
		t.Fatalf("after refill: %d %s", w.Code, w.Body)
	}
}

func TestHandlerRoutes(t *testing.T) {
	s, _ := newUnitServer(t, Options{})
	for _, tc := range []struct {
		method, path string
		code         int
		body         string
	}{
		{http.MethodGet, "/healthz", 200, "ok"},
		{http.MethodGet, "/v1/namespaces/shop/experiments/checkout/responses", 405, `"error":"method GET is not allowed; POST the responses"`},
		{http.MethodPost, "/v1/namespaces/shop/experiments/checkout/response", 404, `"error":"no such endpoint`},
		{http.MethodPost, "/v1/namespaces/shop/experiments/Not_A_Name/responses", 404, `"error":"experiment Not_A_Name not found in namespace shop`},
		{http.MethodPost, "/v1/namespaces/shop/experiments/checkout/responses", 400, `"error":"responses: the batch is empty`},
	} {
		r := httptest.NewRequest(tc.method, tc.path, strings.NewReader(`{"responses":[]}`))
		r.Header.Set("Authorization", "Bearer s3cret")
		r.Header.Set("Content-Type", ContentTypeJSON)
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, r)
		if w.Code != tc.code || !strings.Contains(w.Body.String(), tc.body) {
			t.Errorf("%s %s = %d %s, want %d containing %s", tc.method, tc.path, w.Code, w.Body, tc.code, tc.body)
		}
		if tc.code >= 400 && w.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: error content type %q", tc.method, tc.path, w.Header().Get("Content-Type"))
		}
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	c := fake.NewClientBuilder().WithScheme(testScheme(t)).Build()
	for name, opts := range map[string]Options{
		"no client":           {},
		"cert without key":    {Client: c, TLSCertFile: "cert.pem"},
		"missing cert files":  {Client: c, TLSCertFile: "/nonexistent/cert.pem", TLSKeyFile: "/nonexistent/key.pem"},
		"pending below batch": {Client: c, MaxBatch: 100, MaxPending: 10},
	} {
		if _, err := New(opts); err == nil {
			t.Errorf("%s: New accepted the options", name)
		}
	}
}

func TestServeTLSAndGracefulShutdown(t *testing.T) {
	certFile, keyFile, pool := selfSignedCert(t, t.TempDir(), "collector.test")
	s, _ := newUnitServer(t, Options{TLSCertFile: certFile, TLSKeyFile: keyFile})
	ctx, cancel := context.WithCancel(context.Background())
	addr, done := serveLoopback(ctx, t, s)

	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
	res, err := hc.Get("https://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.TLS == nil {
		t.Fatalf("healthz over TLS: %d tls=%v", res.StatusCode, res.TLS != nil)
	}
	req, _ := http.NewRequest(http.MethodPost, "https://"+addr+"/v1/namespaces/shop/experiments/checkout/responses",
		strings.NewReader(`{"responses":[{"variant":"one-page","score":4}]}`))
	req.Header.Set("Authorization", "Bearer s3cret")
	req.Header.Set("Content-Type", ContentTypeJSON)
	res, err = hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var got accepted
	_ = json.NewDecoder(res.Body).Decode(&got)
	res.Body.Close()
	if res.StatusCode != http.StatusAccepted || got.Accepted != 1 {
		t.Fatalf("POST over TLS: %d %+v", res.StatusCode, got)
	}

	cancel()
	requireServeEnded(t, addr, done)
}

func selfSignedCert(t *testing.T, dir, cn string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	certFile, keyFile, pool, err := utils.WriteServingCert(dir, cn)
	if err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, pool
}

// TestServedCertificateFollowsRotation: the collector serves a rotated
// certificate without a restart (controller-runtime's certwatcher watches
// the files; it keeps the last good pair through a broken rotation).
func TestServedCertificateFollowsRotation(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, _ := selfSignedCert(t, dir, "first")
	s, _ := newUnitServer(t, Options{TLSCertFile: certFile, TLSKeyFile: keyFile})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, _ := serveLoopback(ctx, t, s)
	served := func() string {
		t.Helper()
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // reads the served certificate
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if cn := served(); cn != "first" {
		t.Fatalf("serving %q, want first", cn)
	}
	selfSignedCert(t, dir, "second")
	deadline := time.Now().Add(30 * time.Second) // file events are immediate; the fallback poll runs every 10s
	for served() != "second" {
		if time.Now().After(deadline) {
			t.Fatal("the rotated certificate was not served within 30s")
		}
		time.Sleep(50 * time.Millisecond) // polling the server's handshake
	}
}

// A client told that the experiment runs (it read the API server) must not
// be refused because the manager's cache has not seen the start yet: with a
// token, "not started" and "not found" are checked with the API server. The
// anonymous lookup (the public endpoint) stays on the cache.
func TestCheckedExperimentReadsThroughALaggingCache(t *testing.T) {
	running := runningExperiment()
	notStarted := running.DeepCopy()
	notStarted.Status = cxv1.CXExperimentStatus{}
	secret := tokenSecret("shop", "feedback", "s3cret", true)
	api := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(running, secret).Build()
	for _, tt := range []struct {
		name  string
		cache client.Client
	}{
		{"the cache has not seen the start", fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(notStarted, secret).Build()},
		{"the cache has not seen the experiment", fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(secret).Build()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(Options{Client: tt.cache, APIReader: api})
			if err != nil {
				t.Fatal(err)
			}
			if _, e := s.experiment(context.Background(), "shop", running.Name); e == nil {
				t.Error("the cached lookup accepted an experiment its cache does not show running")
			}
			if _, e := s.checkedExperiment(context.Background(), "shop", running.Name); e != nil {
				t.Errorf("checked lookup: %v, want the API server's running experiment", e)
			}
		})
	}
}

// TestReadBody: readBody reads what io.ReadAll(http.MaxBytesReader) reads,
// whether the length is declared or not, and refuses a body past the limit.
func TestReadBody(t *testing.T) {
	const limit = 1024
	tests := []struct {
		name     string
		size     int
		declared bool
		tooBig   bool
	}{
		{"empty, declared", 0, true, false},
		{"declared", 700, true, false},
		{"declared, at the limit", limit, true, false},
		{"chunked", 700, false, false},
		{"chunked, at the limit", limit, false, false},
		{"chunked, past the limit", limit + 1, false, true},
		{"chunked, far past the limit", 10 * limit, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := strings.Repeat("abcdefghij", tt.size/10+1)[:tt.size]
			r := httptest.NewRequest(http.MethodPost, "/", io.NopCloser(strings.NewReader(want)))
			r.ContentLength = -1
			if tt.declared {
				r.ContentLength = int64(tt.size)
			}
			got, err := readBody(httptest.NewRecorder(), r, limit)
			var tooBig *http.MaxBytesError
			if tt.tooBig {
				if !errors.As(err, &tooBig) {
					t.Fatalf("err = %v, want a *http.MaxBytesError", err)
				}
				return
			}
			if err != nil || string(got) != want {
				t.Fatalf("read %d bytes (%v), want the %d sent", len(got), err, tt.size)
			}
		})
	}
}

// TestAcceptedJSON: the accepted answer is written as encoding/json would.
func TestAcceptedJSON(t *testing.T) {
	for _, a := range []accepted{{}, {Accepted: 1}, {Duplicates: 1}, {Accepted: 1000, Duplicates: 24}, {Accepted: -1}} {
		var want bytes.Buffer
		if err := json.NewEncoder(&want).Encode(a); err != nil {
			t.Fatal(err)
		}
		if got := a.appendJSON(nil); string(got) != want.String() {
			t.Errorf("%+v: %q, want %q", a, got, want.String())
		}
		rec := httptest.NewRecorder()
		writeJSON(rec, http.StatusAccepted, a)
		if rec.Body.String() != want.String() || rec.Header().Get("Content-Type") != "application/json" || rec.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%+v: writeJSON wrote %q with %v", a, rec.Body.String(), rec.Header())
		}
	}
}
