// Package fastserve serves a net/http Handler with fasthttp's HTTP/1.1
// server (github.com/valyala/fasthttp).
//
// The collector's webhook and public endpoints each carry one answer per
// request and hold it until its durable commit, so their cost per request
// is mostly the HTTP server's: Go's net/http spends about 44 µs of CPU on a
// held request here (reading, writing, and the background read it starts
// once a handler has read the body), fasthttp much less (docs/benchmarks.md,
// "What this machine allows"). The handlers stay net/http handlers, tested
// as such; this package turns each fasthttp request into an *http.Request
// and collects the handler's response, in the request's own goroutine.
//
// What differs from net/http, on purpose or by fasthttp's design:
//   - HTTP/1.x only (no HTTP/2, also not over TLS);
//   - a request's body is read before the handler runs, up to the
//     server's MaxRequestBodySize; a larger one reaches the handler as a
//     stream (StreamRequestBody), so the handler's own limit answers it;
//   - the request's context is canceled when the handler returns, not when
//     the client goes away (net/http notices that with the background read
//     this package exists to avoid);
//   - interim (1xx) responses are not sent, and a handler cannot flush or
//     hijack: the response is sent when the handler returns;
//   - a request with both Content-Length and Transfer-Encoding is refused
//     with 400 and its connection closed (net/http follows
//     Transfer-Encoding; RFC 9112 §6.3 allows either, and the pair is a
//     sign of request smuggling);
//   - a handler's panic is logged with its stack and answered with a 500
//     that closes the connection (net/http closes it without an answer).
package fastserve

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strings"

	"github.com/go-logr/logr"
	"github.com/valyala/fasthttp"
)

// BadRequestError is a request net/http would have refused before any
// handler: the bad argument of Handler answers it.
type BadRequestError struct{ Reason string }

func (e *BadRequestError) Error() string { return e.Reason }

// Handler returns a fasthttp handler that serves h. base is the parent of
// every request's context; log receives handlers' panics; bad answers a
// *BadRequestError (nil: a plain-text 400), and should close the
// connection.
func Handler(base context.Context, h http.Handler, log logr.Logger, bad func(*fasthttp.RequestCtx, error)) fasthttp.RequestHandler {
	if bad == nil {
		bad = func(ctx *fasthttp.RequestCtx, err error) {
			ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
			ctx.Error("400 Bad Request: "+err.Error(), http.StatusBadRequest)
			ctx.SetConnectionClose()
		}
	}
	return func(ctx *fasthttp.RequestCtx) {
		serve(base, h, log, bad, ctx)
	}
}

func serve(base context.Context, h http.Handler, log logr.Logger, bad func(*fasthttp.RequestCtx, error), ctx *fasthttp.RequestCtx) {
	r, err := request(ctx)
	if err != nil {
		bad(ctx, err)
		ctx.SetConnectionClose()
		return
	}
	rctx, cancel := context.WithCancel(base)
	defer cancel()
	r = r.WithContext(rctx)
	w := &responseWriter{ctx: ctx, header: make(http.Header, 4)}
	defer func() {
		p := recover()
		if p == nil {
			return
		}
		if p != http.ErrAbortHandler {
			buf := make([]byte, 64<<10)
			buf = buf[:runtime.Stack(buf, false)]
			log.Error(fmt.Errorf("%v", p), "panic serving a request; answered 500 and closed the connection",
				"method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "stack", string(buf))
		}
		ctx.Response.Reset()
		ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
		ctx.Error("500 Internal Server Error", http.StatusInternalServerError)
		ctx.SetConnectionClose()
	}()
	h.ServeHTTP(w, r)
	w.finish()
	if b, ok := r.Body.(*streamBody); ok && !b.eof {
		// The handler left part of a large body unread (its limit
		// answered): close rather than read the rest, as net/http does.
		ctx.SetConnectionClose()
	}
}

// streamBody is a body larger than the server's MaxRequestBodySize, read
// from the connection as the handler reads it.
type streamBody struct {
	r   io.Reader
	eof bool
}

func (b *streamBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (b *streamBody) Close() error { return nil }

// request converts fasthttp's request into net/http's, as net/http's own
// server would have parsed it.
func request(ctx *fasthttp.RequestCtx) (*http.Request, error) {
	uri := string(ctx.RequestURI())
	u, err := url.ParseRequestURI(uri)
	if err != nil {
		return nil, &BadRequestError{Reason: fmt.Sprintf("malformed request target: %v", err)}
	}
	proto := string(ctx.Request.Header.Protocol())
	major, minor, ok := http.ParseHTTPVersion(proto)
	if !ok {
		return nil, &BadRequestError{Reason: fmt.Sprintf("malformed HTTP version %q", proto)}
	}
	if ctx.Request.Header.ContentLength() == -1 && hasHeader(ctx.Request.Header.RawHeaders(), "content-length") {
		// fasthttp follows Transfer-Encoding (RFC 9112 §6.3 allows it);
		// net/http refuses the pair, a sign of request smuggling.
		return nil, &BadRequestError{Reason: "both Content-Length and Transfer-Encoding given"}
	}
	r := &http.Request{
		Method:     string(ctx.Method()),
		URL:        u,
		Proto:      proto,
		ProtoMajor: major,
		ProtoMinor: minor,
		Header:     make(http.Header, 8),
		Host:       string(ctx.Host()),
		RemoteAddr: ctx.RemoteAddr().String(),
		RequestURI: uri,
		Close:      ctx.Request.Header.ConnectionClose(),
		TLS:        ctx.TLSConnectionState(),
	}
	for k, v := range ctx.Request.Header.All() {
		key := http.CanonicalHeaderKey(string(k))
		switch key {
		case "Host":
			continue // net/http keeps it in Host only
		case "Connection":
			// fasthttp adds "Connection: close" to an HTTP/1.0 request
			// that did not ask to be kept alive; net/http shows what came.
			if !hasHeader(ctx.Request.Header.RawHeaders(), "connection") {
				continue
			}
		case "Transfer-Encoding":
			r.TransferEncoding = append(r.TransferEncoding, strings.ToLower(string(v)))
			continue
		}
		r.Header[key] = append(r.Header[key], string(v))
	}
	switch {
	case ctx.Request.IsBodyStream():
		// Larger than the server's MaxRequestBodySize: the handler reads it,
		// and its own limit answers.
		r.Body = &streamBody{r: ctx.RequestBodyStream()}
		r.ContentLength = int64(ctx.Request.Header.ContentLength())
		if r.ContentLength < 0 {
			r.ContentLength = -1
		}
	case len(ctx.PostBody()) > 0:
		body := ctx.PostBody()
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
	default:
		r.Body = http.NoBody
	}
	return r, nil
}

// hasHeader reports whether the raw header block has a field named name
// (lower case).
func hasHeader(raw []byte, name string) bool {
	raw = bytes.ToLower(raw)
	field := []byte(name + ":")
	return bytes.HasPrefix(raw, field) || bytes.Contains(raw, append([]byte("\n"), field...))
}

// responseWriter collects a handler's response into fasthttp's.
type responseWriter struct {
	ctx    *fasthttp.RequestCtx
	header http.Header
	status int
	// sniff: the handler set no Content-Type; the body's first bytes
	// choose one, as net/http does.
	sniff bool
}

func (w *responseWriter) Header() http.Header { return w.header }

func (w *responseWriter) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if w.status != 0 || code < 200 {
		return
	}
	w.status = code
	w.ctx.SetStatusCode(code)
	_, w.sniff = w.header["Content-Type"]
	w.sniff = !w.sniff && bodyAllowed(code)
	for k, vv := range w.header {
		if k == "Content-Length" || k == "Transfer-Encoding" {
			continue // fasthttp frames the body itself
		}
		for _, v := range vv {
			w.ctx.Response.Header.Add(k, v)
		}
	}
}

func (w *responseWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	w.ctx.Response.AppendBody(b)
	return len(b), nil
}

// finish completes the response once the handler returned.
func (w *responseWriter) finish() {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if body := w.ctx.Response.Body(); w.sniff && len(body) > 0 {
		w.ctx.Response.Header.SetContentType(http.DetectContentType(body))
	}
}

// bodyAllowed is net/http's rule: no body with 1xx, 204 and 304.
func bodyAllowed(code int) bool {
	return code >= 200 && code != http.StatusNoContent && code != http.StatusNotModified
}
