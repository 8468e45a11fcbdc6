package collector

import (
	"bytes"
	"context"
	"io"
	"net/http"

	"github.com/valyala/fasthttp"
	"k8s.io/apimachinery/pkg/types"

	"github.com/rapport-dev/rapport/internal/fastserve"
)

// fastBodyBytes is the largest webhook body fastWebhook takes: fasthttp
// has read a body this small before the handler runs (see Serve), so
// reading it never waits.
const fastBodyBytes = 8 << 10

// fastWebhook serves a webhook POST with fasthttp's types, as
// fastserve.Native: turning the request into net/http's and the answer
// back cost about 7 of the manager's 62 µs of CPU per webhook answer, and
// the reply written here costs about 3 (docs/benchmarks.md). serveWebhook decides, as for the net/http handler
// (webhook), and the reply is written as writeJSON and countRequests
// would. It takes only plain requests: a POST to exactly
// /v1/namespaces/{namespace}/sources/{name}/webhook (names of lowercase
// letters, digits, '-' and '.', no escapes or dot segments; a query is
// ignored, as the mux ignores it) whose Content-Length is at most
// fastBodyBytes and MaxBodyBytes. Every other request goes to the mux.
func (s *Server) fastWebhook(ctx context.Context, req *fasthttp.RequestCtx) bool {
	if !req.IsPost() {
		return false
	}
	nn, ok := webhookPath(req.RequestURI())
	if !ok {
		return false
	}
	n := req.Request.Header.ContentLength()
	if n < 0 || n > fastBodyBytes || int64(n) > s.maxBody {
		return false
	}
	// Read whatever the answer, as the bridge drains an unread body: the
	// connection stays usable.
	body := make([]byte, n)
	var readErr error
	if req.Request.IsBodyStream() {
		_, readErr = io.ReadFull(req.RequestBodyStream(), body)
	} else {
		copy(body, req.PostBody())
	}
	rep := s.serveWebhook(ctx, webhookRequest{
		method:        http.MethodPost,
		nn:            nn,
		contentLength: int64(n),
		header:        fastHeader{&req.Request.Header},
		headers:       func() http.Header { return fastserve.Header(req) },
		body:          func(int64) ([]byte, error) { return body, readErr },
		remote:        func() string { return req.RemoteAddr().String() },
	})
	h := &req.Response.Header
	if rep.allow != "" {
		h.Set("Allow", rep.allow)
	}
	if rep.retryAfter != "" {
		h.Set("Retry-After", rep.retryAfter)
	}
	req.SetStatusCode(rep.code)
	var out []byte // as writeJSON would write it
	switch {
	case rep.err != nil:
		out = jsonBody(errorJSON(rep.err))
	case rep.body != nil:
		out = jsonBody(rep.body)
	}
	if out != nil {
		h.SetContentType(jsonContentType[0])
		h.SetCanonical(headerNoSniff, valueNoSniff)
		req.SetBody(out)
	}
	if readErr != nil {
		req.SetConnectionClose() // the rest of the body is unknown
	}
	countRequest(rep.code)
	return true
}

// webhookPath reads the namespace and name of a webhook's request target,
// when it is one fastWebhook takes.
func webhookPath(uri []byte) (types.NamespacedName, bool) {
	const prefix, middle, suffix = "/v1/namespaces/", "/sources/", "/webhook"
	p, query, _ := bytes.Cut(uri, []byte("?"))
	for _, q := range query {
		if q <= ' ' || q >= 0x7f { // net/url refuses control bytes
			return types.NamespacedName{}, false
		}
	}
	if len(p) < len(prefix)+len(suffix) || !bytes.HasPrefix(p, []byte(prefix)) || !bytes.HasSuffix(p, []byte(suffix)) {
		return types.NamespacedName{}, false
	}
	ns, name, ok := bytes.Cut(p[len(prefix):len(p)-len(suffix)], []byte(middle))
	if !ok || !plainSegment(ns) || !plainSegment(name) {
		return types.NamespacedName{}, false
	}
	return types.NamespacedName{Namespace: string(ns), Name: string(name)}, true
}

// plainSegment: a path segment the mux gives as it is (no escapes, not a
// dot segment, which the mux would redirect), of a Kubernetes name's
// characters.
func plainSegment(b []byte) bool {
	if len(b) == 0 || string(b) == "." || string(b) == ".." {
		return false
	}
	for _, c := range b {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// The X-Content-Type-Options header, in the form SetCanonical takes.
var headerNoSniff, valueNoSniff = []byte("X-Content-Type-Options"), []byte(noSniff[0])

// fastHeader is fasthttp's request header as feedback.Verify reads it.
type fastHeader struct{ h *fasthttp.RequestHeader }

func (f fastHeader) Get(name string) string { return string(f.h.Peek(name)) }
