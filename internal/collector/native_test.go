package collector

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/assignment"
	"github.com/rapport-dev/rapport/internal/feedback"
	"github.com/rapport-dev/rapport/internal/metrics"
)

func TestWebhookPath(t *testing.T) {
	tests := []struct {
		uri      string
		ns, name string // empty: declined (the mux serves it)
	}{
		{"/v1/namespaces/shop/sources/typeform/webhook", "shop", "typeform"},
		{"/v1/namespaces/shop-2/sources/type.form-1/webhook?x=1&y=%20", "shop-2", "type.form-1"},
		{"/v1/namespaces/a/sources/b/webhook?", "a", "b"},
		{"/v1/namespaces/sources/sources/sources/webhook", "sources", "sources"},
		{"/v1/namespaces/a/sources/b/sources/c/webhook", "", ""}, // a name with '/'
		{"/v1/namespaces/webhook", "", ""},
		{"/v1/namespaces/shop/sources/%74ypeform/webhook", "", ""},        // an escape
		{"/v1/namespaces/shop/sources/Typeform/webhook", "", ""},          // not a Kubernetes name
		{"/v1/namespaces/shop/sources/../webhook", "", ""},                // a dot segment
		{"/v1/namespaces/./sources/typeform/webhook", "", ""},             // a dot segment
		{"/v1/namespaces/shop/sources/typeform/webhook/", "", ""},         // another path
		{"/v1/namespaces/shop/sources/a/b/webhook", "", ""},               // a segment too many
		{"/v1/namespaces/shop/sources//webhook", "", ""},                  // an empty name
		{"/v1/namespaces//sources/typeform/webhook", "", ""},              // an empty namespace
		{"/v1/namespaces/shop/experiments/typeform/webhook", "", ""},      // another endpoint
		{"/v1/namespaces/shop/sources/typeform/webhooks", "", ""},         // another endpoint
		{"http://collector/v1/namespaces/shop/sources/t/webhook", "", ""}, // absolute form
		{"/v1/namespaces/shop/sources/typeform/webhook?a=\x01", "", ""},   // a control byte in the query
		{"/v1/namespaces/shop/sources/typeform/webhook?a b", "", ""},      // a space in the query
		{"/v1/namespaces/shop/sources/webhook", "", ""},
		{"", "", ""},
	}
	for _, tc := range tests {
		nn, ok := webhookPath([]byte(tc.uri))
		if want := tc.ns != ""; ok != want || nn != (types.NamespacedName{Namespace: tc.ns, Name: tc.name}) && want {
			t.Errorf("webhookPath(%q) = %v, %v; want %s/%s, %v", tc.uri, nn, ok, tc.ns, tc.name, want)
		}
	}
}

// TestFastWebhookMatchesHandler sends each webhook request twice over
// HTTP: once as fastWebhook takes it, once with the source's name escaped
// (%67 for its first letter), which fastWebhook leaves to the net/http
// handler. Both must answer alike: status, body, headers, and whether the
// connection stays open.
func TestFastWebhookMatchesHandler(t *testing.T) {
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "hooks"},
		Data: map[string][]byte{feedback.KeyGenericHMAC: []byte("hook-key")}}
	generic := &cxv1.GenericWebhook{Auth: cxv1.GenericAuthHMACSHA256}
	source := func(name, secret string) *cxv1.FeedbackSource {
		return &cxv1.FeedbackSource{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name},
			Spec: cxv1.FeedbackSourceSpec{Provider: cxv1.ProviderGeneric, Generic: generic, SecretRef: cxv1.LocalObjectRef{Name: secret}}}
	}
	c := fake.NewClientBuilder().WithScheme(testScheme(t)).WithStatusSubresource(&cxv1.FeedbackSource{}).
		WithObjects(runningExperiment(), secret, source("generic", "hooks"), source("gone-secret", "missing")).Build()
	s, err := New(Options{Client: c, RateLimit: -1, MaxBodyBytes: 2048})
	if err != nil {
		t.Fatal(err)
	}
	addr, native := serveCountingNative(t, s)

	event := func(id, fields string) string { return `{"id":"` + id + `",` + fields + `}` }
	good := `"experiment":"checkout","variant":"one-page","score":4`
	signed := func(body string) string {
		h, v := feedback.Sign(cxv1.ProviderGeneric, generic, secret.Data, []byte(body))
		return h + ": " + v + "\r\n"
	}
	tests := []struct {
		name, method, source string
		body                 func(path string) string // path: "fst" or "mux", for event ids of their own
		headers              func(body string) string
		code                 int
		native               bool // fastWebhook takes it (the mux takes the other)
	}{
		{name: "accepted", body: func(p string) string { return event(p+"-1", good) }, headers: signed, code: 202, native: true},
		{name: "a retry", body: func(p string) string { return event(p+"-1", good) }, headers: signed, code: 202, native: true},
		{name: "unsigned", body: func(p string) string { return event(p+"-2", good) }, code: 401, native: true},
		{name: "wrongly signed", body: func(p string) string { return event(p+"-3", good) },
			headers: func(string) string { return feedback.HeaderGenericHMAC + ": sha256=00\r\n" }, code: 401, native: true},
		{name: "not JSON", body: func(string) string { return `{"id":` }, headers: signed, code: 400, native: true},
		{name: "an unknown variant", body: func(p string) string {
			return event(p+"-4", `"experiment":"checkout","variant":"two-page","score":4`)
		}, headers: signed, code: 422, native: true},
		{name: "a score off the scale", body: func(p string) string {
			return event(p+"-5", `"experiment":"checkout","variant":"control","score":9`)
		}, headers: signed, code: 422, native: true},
		{name: "too large", body: func(p string) string { return event(p+"-6", good+strings.Repeat(" ", 2048)) }, headers: signed, code: 413},
		{name: "an unknown source", source: "gnone", body: func(p string) string { return event(p+"-7", good) }, headers: signed, code: 404, native: true},
		{name: "a Secret that is missing", source: "gone-secret", body: func(p string) string { return event(p+"-8", good) }, headers: signed, code: 503, native: true},
		{name: "GET", method: "GET", body: func(string) string { return "" }, code: 405},
		{name: "HEAD", method: "HEAD", body: func(string) string { return "" }, code: 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method, src := tc.method, tc.source
			if method == "" {
				method = http.MethodPost
			}
			if src == "" {
				src = "generic"
			}
			var got [2]string
			for i, path := range []string{"fst", "mux"} {
				name := src
				if path == "mux" {
					name = escapeFirst(src)
				}
				body := tc.body(path)
				headers := ""
				if tc.headers != nil {
					headers = tc.headers(body)
				}
				raw := method + " /v1/namespaces/shop/sources/" + name + "/webhook HTTP/1.1\r\nHost: collector\r\nContent-Type: application/json\r\n" +
					headers + "Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
				if method != http.MethodPost {
					raw = method + " /v1/namespaces/shop/sources/" + name + "/webhook HTTP/1.1\r\nHost: collector\r\n\r\n"
				}
				before := native.Load()
				counted := metricValue(t, metrics.CollectorRequests.WithLabelValues(strconv.Itoa(tc.code)))
				got[i] = exchangeSummary(t, addr, method, raw)
				if served, want := native.Load() > before, tc.native && path == "fst"; served != want {
					t.Errorf("%s: served by fastWebhook: %v, want %v", path, served, want)
				}
				want := 1.0
				if tc.code == http.StatusOK {
					want++ // exchangeSummary's /healthz
				}
				if n := metricValue(t, metrics.CollectorRequests.WithLabelValues(strconv.Itoa(tc.code))) - counted; n != want {
					t.Errorf("%s: rapport_collector_requests_total{code=%q} grew by %v, want %v", path, strconv.Itoa(tc.code), n, want)
				}
			}
			sameAnswers(t, "fastWebhook", got, tc.code)
		})
	}
}

func TestPublicPath(t *testing.T) {
	const pre, mid, suf = publicPrefix + "namespaces/", "/experiments/", "/responses"
	tests := []struct {
		uri      string
		ns, name string // empty: declined (the mux serves it)
	}{
		{"/v1/public/namespaces/shop/experiments/checkout/responses", "shop", "checkout"},
		{"/v1/public/namespaces/shop/experiments/checkout/responses?v=2", "shop", "checkout"},
		{"/v1/public/namespaces/shop/experiments/checkout", "", ""}, // the survey's settings
		{"/v1/public/namespaces/shop/experiments/%63heckout/responses", "", ""},
		{"/v1/public/namespaces/shop/experiments/../responses", "", ""},
		{"/v1/namespaces/shop/experiments/checkout/responses", "", ""}, // the token endpoint
		{"/v1/public/namespaces/shop/experiments/a/b/responses", "", ""},
	}
	for _, tc := range tests {
		nn, ok := plainPath([]byte(tc.uri), pre, mid, suf)
		if want := tc.ns != ""; ok != want || nn != (types.NamespacedName{Namespace: tc.ns, Name: tc.name}) && want {
			t.Errorf("plainPath(%q) = %v, %v; want %s/%s, %v", tc.uri, nn, ok, tc.ns, tc.name, want)
		}
	}
}

// TestFastPublicMatchesHandler sends each request to the public endpoint
// twice over HTTP: once as fastPublic takes it, once with the
// experiment's name escaped (%63 for its first letter), which fastPublic
// leaves to the net/http handler. Both must answer alike: status, body,
// headers (CORS included), the request and rejection counters, and
// whether the connection stays open. Every request comes from an address
// of its own (X-Forwarded-For, trusted here), each allowed one request a
// day, so that the rate limit is on and answers one case.
func TestFastPublicMatchesHandler(t *testing.T) {
	const origin = "https://shop.example.com"
	exp := runningExperiment()
	exp.Spec.Satisfaction.Source.Collector.Browser = &cxv1.BrowserFeedback{AllowedOrigins: []string{origin}}
	key := []byte(strings.Repeat("k", assignment.KeyBytes))
	keySecret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: assignment.SecretName("checkout"),
		OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(exp, cxv1.GroupVersion.WithKind("CXExperiment"))}},
		Data: map[string][]byte{cxv1.AssignmentKeyDataKey: key}}
	c := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(exp, keySecret).Build()
	s, err := New(Options{Client: c, RateLimit: -1, PublicRateLimit: 1.0 / 86400, PublicRateBurst: 1, ClientIPHeader: "X-Forwarded-For"})
	if err != nil {
		t.Fatal(err)
	}
	addr, native := serveCountingNative(t, s)
	ctx := context.Background()

	value := assignment.Sign(key, assignment.Assignment{Namespace: "shop", Experiment: "checkout", Run: 1, Segment: "all", Variant: "one-page"})
	answer := func(value, respondent, score string) string {
		return `{"assignment":"` + value + `","respondent":"` + respondent + `","score":` + score + `}`
	}
	good := func(p string) string { return answer(value, "resp-"+p+"-0001", "4") }
	fromShop := "Origin: " + origin + "\r\nContent-Type: application/json\r\n"
	tests := []struct {
		name, method, experiment string
		body                     func(path string) string // path: "fst" or "mux", for respondents of their own
		headers                  string
		code                     int
		reason                   string // the rejection counted, if any
		native                   bool   // fastPublic takes it (the mux takes the other)
	}{
		{name: "accepted", body: good, headers: fromShop, code: 202, native: true},
		{name: "the same respondent again", body: good, headers: fromShop, code: 202, native: true},
		{name: "a media type with parameters", body: func(p string) string { return answer(value, "resp-"+p+"-0002", "5") },
			headers: "Origin: " + origin + "\r\nContent-Type: application/json; charset=utf-8\r\n", code: 202, native: true},
		{name: "no Origin", body: good, headers: "Content-Type: application/json\r\n", code: 403, reason: reasonMissingOrigin, native: true},
		{name: "another origin", body: good, headers: "Origin: https://evil.example.com\r\nContent-Type: application/json\r\n",
			code: 403, reason: reasonOriginNotAllowed, native: true},
		{name: "an unknown experiment", experiment: "cart", body: good, headers: fromShop, code: 404, reason: reasonUnknownExperiment, native: true},
		{name: "text/plain", body: good, headers: "Origin: " + origin + "\r\nContent-Type: text/plain\r\n", code: 415, reason: "UnsupportedMediaType", native: true},
		{name: "not JSON", body: func(string) string { return `{"assignment":` }, headers: fromShop, code: 400, reason: reasonInvalidAnswer, native: true},
		{name: "a tampered assignment", body: func(p string) string {
			return answer(strings.Replace(value, "one-page", "control", 1), "resp-"+p+"-0003", "4")
		}, headers: fromShop, code: 403, reason: reasonForgedAssignment, native: true},
		{name: "a score off the scale", body: func(p string) string { return answer(value, "resp-"+p+"-0004", "6") },
			headers: fromShop, code: 422, reason: reasonScoreOffScale, native: true},
		{name: "a respondent too short", body: func(string) string { return answer(value, "r", "4") },
			headers: fromShop, code: 422, reason: reasonInvalidAnswer, native: true},
		{name: "rate limited", body: good, headers: fromShop, code: 429, reason: reasonRateLimited, native: true},
		{name: "too large", body: func(p string) string { return answer(value, "resp-"+p+"-0005", "4"+strings.Repeat(" ", maxPublicBody)) },
			headers: fromShop, code: 413, reason: reasonTooLarge},
		{name: "GET", method: "GET", body: func(string) string { return "" }, headers: "Origin: " + origin + "\r\n", code: 405, reason: "MethodNotAllowed"},
		{name: "a preflight", method: "OPTIONS", body: func(string) string { return "" },
			headers: "Origin: " + origin + "\r\nAccess-Control-Request-Method: POST\r\n", code: 204},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method, name := tc.method, tc.experiment
			if method == "" {
				method = http.MethodPost
			}
			if name == "" {
				name = "checkout"
			}
			var got [2]string
			for j, path := range []string{"fst", "mux"} {
				target := name
				if path == "mux" {
					target = escapeFirst(name)
				}
				// An address of its own, on the last of two header lines.
				client := "X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-For: 198.51.100.7, 10.1." + strconv.Itoa(i) + "." + strconv.Itoa(j) + "\r\n"
				if tc.code == http.StatusTooManyRequests { // its one request of the day is taken
					client = "X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-For: 10.2." + strconv.Itoa(i) + "." + strconv.Itoa(j) + "\r\n"
					_ = exchangeSummary(t, addr, http.MethodGet, "GET /v1/public/namespaces/shop/experiments/checkout HTTP/1.1\r\nHost: collector\r\n"+client+"\r\n")
				}
				body := tc.body(path)
				raw := method + " /v1/public/namespaces/shop/experiments/" + target + "/responses HTTP/1.1\r\nHost: collector\r\n" + client + tc.headers
				if method == http.MethodPost {
					raw += "Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
				} else {
					raw += "\r\n"
				}
				before := native.Load()
				counted := metricValue(t, metrics.CollectorRequests.WithLabelValues(strconv.Itoa(tc.code)))
				source := "browser/" + name
				if tc.reason == reasonRateLimited || tc.reason == reasonMissingOrigin || tc.reason == reasonUnknownExperiment || tc.reason == "MethodNotAllowed" {
					source = "" // refused before the experiment is read
				}
				rejected := rejectionValue(t, "shop", source, tc.reason)
				got[j] = exchangeSummary(t, addr, method, raw)
				if served, want := native.Load() > before, tc.native && path == "fst"; served != want {
					t.Errorf("%s: served by fastPublic: %v, want %v", path, served, want)
				}
				if n := metricValue(t, metrics.CollectorRequests.WithLabelValues(strconv.Itoa(tc.code))) - counted; n != 1 {
					t.Errorf("%s: rapport_collector_requests_total{code=%q} grew by %v, want 1", path, strconv.Itoa(tc.code), n)
				}
				if tc.reason != "" {
					if n := rejectionValue(t, "shop", source, tc.reason) - rejected; n != 1 {
						t.Errorf("%s: rejections of %q (source %q) grew by %v, want 1", path, tc.reason, source, n)
					}
				}
			}
			sameAnswers(t, "fastPublic", got, tc.code)
		})
	}
	tally := &cxv1.ResponseTally{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: "shop", Name: "checkout"}, tally); err != nil {
		t.Fatal(err)
	}
	if tally.Spec.Total != 4 { // per path: the first answer and the one with parameters
		t.Errorf("the tally counts %d answers, want 4: %+v", tally.Spec.Total, tally.Spec.Counts)
	}
}

// escapeFirst escapes a name's first letter (%63 for c), so that the mux
// serves the request and the native handler declines it.
func escapeFirst(name string) string {
	return "%" + strconv.FormatInt(int64(name[0]), 16) + name[1:]
}

// sameAnswers requires the native handler's answer (got[0]) and the net/http
// handler's (got[1]) to be equal, with status code.
func sameAnswers(t *testing.T, native string, got [2]string, code int) {
	t.Helper()
	if got[0] != got[1] {
		t.Errorf("%s and the net/http handler answer differently:\nfast: %s\nmux:  %s", native, got[0], got[1])
	}
	if want := strconv.Itoa(code) + " "; !strings.HasPrefix(got[0], want) {
		t.Errorf("got %s, want %d", got[0], code)
	}
	t.Log(got[0])
}

// serveCountingNative serves s on loopback until the test ends, and
// counts the requests its native handler serves (the mux serves the
// others).
func serveCountingNative(t *testing.T, s *Server) (string, *atomic.Int64) {
	native := new(atomic.Int64)
	fast := s.native
	s.native = func(ctx context.Context, req *fasthttp.RequestCtx) bool {
		served := fast(ctx, req)
		if served {
			native.Add(1)
		}
		return served
	}
	ctx, cancel := context.WithCancel(context.Background())
	addr, done := serveLoopback(ctx, t, s)
	t.Cleanup(func() { requireServeEnded(t, addr, done) })
	t.Cleanup(cancel)
	return addr, native
}

// rejectionValue is rapport_feedback_rejections_total of a source and
// reason (source "": counted before the source was known).
func rejectionValue(t *testing.T, ns, source, reason string) float64 {
	if source == "" {
		ns, source = "", "unknown"
	}
	return metricValue(t, metrics.FeedbackRejections.WithLabelValues(ns, source, reason))
}

// exchangeSummary sends raw on a new connection and summarises the answer:
// status, the headers a client reads, the body, and whether the server
// kept the connection open (a second request on it is answered).
func exchangeSummary(t *testing.T, addr, method, raw string) string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the body: %v", err)
	}
	var b strings.Builder
	b.WriteString(strconv.Itoa(resp.StatusCode) + " " + strings.TrimSpace(string(body)))
	for _, k := range []string{"Content-Type", "Content-Length", "X-Content-Type-Options", "Retry-After", "Allow", "Connection",
		"Access-Control-Allow-Origin", "Access-Control-Allow-Methods", "Vary", "Cache-Control"} {
		b.WriteString(" | " + k + ": " + strings.Join(resp.Header.Values(k), ","))
	}
	open := "closed"
	if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: collector\r\n\r\n"); err == nil {
		if r, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet}); err == nil && r.StatusCode == http.StatusOK {
			open = "open"
			_ = r.Body.Close()
		}
	}
	b.WriteString(" | connection " + open)
	return b.String()
}
