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

// serveNative is the collector's fastserve.Native: the two endpoints that
// take one answer per request, at the rate of a survey tool's or a web
// page's traffic, are served with fasthttp's types (fastWebhook,
// fastPublic). Turning a request into net/http's and the answer back cost
// about 7 of the manager's 62 µs of CPU per webhook answer
// (docs/benchmarks.md). Every other request goes to the mux.
func (s *Server) serveNative(ctx context.Context, req *fasthttp.RequestCtx) bool {
	if !req.IsPost() {
		return false
	}
	if bytes.HasPrefix(req.RequestURI(), []byte(publicPrefix)) {
		return s.fastPublic(ctx, req)
	}
	return s.fastWebhook(ctx, req)
}

// fastWebhook serves a webhook POST (serveNative checked the method) with
// fasthttp's types: serveWebhook decides, as for the net/http handler
// (webhook). It takes only plain requests: a POST to exactly
// /v1/namespaces/{namespace}/sources/{name}/webhook (see plainPath) whose
// Content-Length is at most fastBodyBytes and MaxBodyBytes.
func (s *Server) fastWebhook(ctx context.Context, req *fasthttp.RequestCtx) bool {
	nn, ok := webhookPath(req.RequestURI())
	if !ok {
		return false
	}
	n := req.Request.Header.ContentLength()
	if n < 0 || n > fastBodyBytes || int64(n) > s.maxBody {
		return false
	}
	return fastAnswer(req, n, func(body func(int64) ([]byte, error)) reply {
		return s.serveWebhook(ctx, webhookRequest{
			method:        http.MethodPost,
			nn:            nn,
			contentLength: int64(n),
			header:        fastHeader{&req.Request.Header},
			headers:       func() http.Header { return fastserve.Header(req) },
			body:          body,
			remote:        func() string { return req.RemoteAddr().String() },
		})
	})
}

// publicPrefix starts the paths of the public endpoint.
const publicPrefix = "/v1/public/"

// fastPublic serves a browser's answer (serveNative checked the method)
// with fasthttp's types: servePublicResponses decides, as for the net/http
// handler (publicResponses). It takes only plain requests: a POST to
// exactly /v1/public/namespaces/{namespace}/experiments/{name}/responses
// (see plainPath) whose Content-Length is at most maxPublicBody.
func (s *Server) fastPublic(ctx context.Context, req *fasthttp.RequestCtx) bool {
	nn, ok := plainPath(req.RequestURI(), publicPrefix+"namespaces/", "/experiments/", "/responses")
	if !ok {
		return false
	}
	n := req.Request.Header.ContentLength()
	if n < 0 || n > maxPublicBody {
		return false
	}
	return fastAnswer(req, n, func(body func(int64) ([]byte, error)) reply {
		h := fastHeader{&req.Request.Header}
		return s.servePublicResponses(ctx, publicRequest{
			method: http.MethodPost, ns: nn.Namespace, name: nn.Name,
			header: h, last: h.last,
			remote: func() string { return req.RemoteAddr().String() },
			body:   body,
		})
	})
}

// fastAnswer reads the request's body of n bytes (at most fastBodyBytes,
// which fasthttp has read before the handler runs, or streams from what
// it has read), has serve decide with it, and writes the reply as
// reply.write and countRequests would. The body is read whatever the
// answer, as the bridge drains an unread body, so the connection stays
// usable; one that could not be read whole is closed after the reply.
func fastAnswer(req *fasthttp.RequestCtx, n int, serve func(body func(int64) ([]byte, error)) reply) bool {
	body := make([]byte, n)
	var readErr error
	if req.Request.IsBodyStream() {
		_, readErr = io.ReadFull(req.RequestBodyStream(), body)
	} else {
		copy(body, req.PostBody())
	}
	rep := serve(func(int64) ([]byte, error) { return body, readErr })
	rep.writeFast(req)
	if readErr != nil {
		req.SetConnectionClose() // the rest of the body is unknown
	}
	return true
}

// webhookPath reads the namespace and name of a webhook's request target,
// when it is one fastWebhook takes.
func webhookPath(uri []byte) (types.NamespacedName, bool) {
	return plainPath(uri, "/v1/namespaces/", "/sources/", "/webhook")
}

// plainPath reads the namespace and name of a request target
// prefix{namespace}middle{name}suffix whose names the mux would give as
// they are: of lowercase letters, digits, '-' and '.', without escapes or
// dot segments. A query is ignored, as the mux ignores it, unless it holds
// a byte net/url refuses.
func plainPath(uri []byte, prefix, middle, suffix string) (types.NamespacedName, bool) {
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

// last gives the header's last value, as the last of net/http's
// Header.Values (lastValue) does.
func (f fastHeader) last(name string) string {
	if v := f.h.PeekAll(name); len(v) > 0 {
		return string(v[len(v)-1])
	}
	return ""
}
