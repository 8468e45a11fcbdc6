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
// That bridge costs a few µs per request; a Native handler may serve the
// hottest requests with fasthttp's types instead, after the same checks
// and with the same panic handling (the collector's webhooks do).
//
// What differs from net/http, on purpose or by fasthttp's design:
//   - HTTP/1.x only (no HTTP/2, also not over TLS);
//   - with StreamRequestBody (as the collector serves), every body reaches
//     the handler as a stream of which fasthttp has read ahead at most
//     8 KiB, so the handler's own limit answers a large one; a body the
//     handler stopped reading (its limit answered) closes the connection,
//     as net/http's MaxBytesReader does, and one it never read is read and
//     dropped up to 256 KiB to keep the connection, as net/http does (more
//     declared, or more sent, closes it); such a close lingers up to 500 ms
//     for the client to stop sending, so that the kernel's reset does not
//     discard the answer;
//     the handler runs once the first 8 KiB (or the whole, if smaller) of a
//     declared body have arrived, where net/http runs it after the headers;
//   - fasthttp answers "Expect: 100-continue" itself, before the handler
//     runs (net/http does when the handler first reads the body);
//   - the request's context is canceled when the handler returns, not when
//     the client goes away (net/http notices that with the background read
//     this package exists to avoid);
//   - a handler's interim (1xx) responses are not sent, and a handler
//     cannot flush or hijack: the response is sent when it returns;
//   - a request with both Content-Length and Transfer-Encoding, or with a
//     Transfer-Encoding other than chunked, is refused with 400 and its
//     connection closed (net/http follows Transfer-Encoding when both
//     come, and answers 501 to other codings; the pair and "identity" are
//     signs of request smuggling, and fasthttp would read an "identity"
//     request without Content-Length as having no body);
//   - the Cookie header is fasthttp's rebuilt one: several Cookie lines
//     merged, cookies with invalid values dropped;
//   - behind LazyDeadlines (as the collector serves), the server's timeouts
//     (idle, headers, body, response) expire up to DeadlineSlack late;
//   - a handler's panic (also http.ErrAbortHandler, which is not logged) is
//     answered with a 500 that closes the connection (net/http closes it
//     without an answer); other panics are logged with their stack.
package fastserve

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/valyala/fasthttp"
)

// BadRequestError is a request net/http would have refused before any
// handler: the bad argument of Handler answers it.
type BadRequestError struct{ Reason string }

func (e *BadRequestError) Error() string { return e.Reason }

// Native serves a request with fasthttp's types directly, in place of the
// net/http handler, and reports whether it did (false: the handler serves
// it, and nothing may have been written). It runs after the checks
// net/http makes before any handler (the HTTP version, request smuggling),
// with a context canceled when it returns; its panics are answered as a
// handler's. It exists for the few requests whose cost is mostly the
// bridge's (the collector's webhooks), and must answer them as the handler
// would.
type Native func(ctx context.Context, req *fasthttp.RequestCtx) bool

// Handler returns a fasthttp handler that serves h. base is the parent of
// every request's context; log receives handlers' panics; bad answers a
// *BadRequestError (nil: a plain-text 400), after which the connection is
// closed; native, when not nil, is offered every request first.
func Handler(base context.Context, h http.Handler, log logr.Logger, bad func(*fasthttp.RequestCtx, error), native Native) fasthttp.RequestHandler {
	if bad == nil {
		bad = func(ctx *fasthttp.RequestCtx, err error) {
			ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
			ctx.Error("400 Bad Request: "+err.Error(), http.StatusBadRequest)
		}
	}
	return func(ctx *fasthttp.RequestCtx) {
		serve(base, h, log, bad, native, ctx)
	}
}

func serve(base context.Context, h http.Handler, log logr.Logger, bad func(*fasthttp.RequestCtx, error), native Native, ctx *fasthttp.RequestCtx) {
	if err := check(ctx); err != nil {
		bad(ctx, err)
		ctx.SetConnectionClose()
		return
	}
	rctx, cancel := context.WithCancel(base)
	defer cancel()
	defer func() {
		p := recover()
		if p == nil {
			return
		}
		if p != http.ErrAbortHandler {
			buf := make([]byte, 64<<10)
			buf = buf[:runtime.Stack(buf, false)]
			log.Error(fmt.Errorf("%v", p), "panic serving a request; answered 500 and closed the connection",
				"method", string(ctx.Method()), "path", string(ctx.Path()), "remote", ctx.RemoteAddr().String(), "stack", string(buf))
		}
		ctx.Response.Reset()
		ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
		ctx.Error("500 Internal Server Error", http.StatusInternalServerError)
		ctx.SetConnectionClose()
	}()
	if native != nil && native(rctx, ctx) {
		return
	}
	r, err := request(ctx)
	if err != nil {
		bad(ctx, err)
		ctx.SetConnectionClose()
		return
	}
	r = r.WithContext(rctx)
	w := &responseWriter{ctx: ctx, header: make(http.Header, 4)}
	h.ServeHTTP(w, r)
	w.finish()
	if b, ok := r.Body.(*streamBody); ok && !b.eof && !b.drain(r.ContentLength) {
		// The handler left the body unread and it could not be drained:
		// the close lingers (see linger).
		lingerClose(ctx)
	}
}

// lingerClose has the connection closed after the response, by linger:
// fasthttp would close it at once; it waits only for a hijacker, which then
// sends the response itself.
func lingerClose(ctx *fasthttp.RequestCtx) {
	ctx.SetConnectionClose()
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) { linger(c, &ctx.Response) })
}

// maxDrain is how much of a body its handler left unread is read and
// dropped to keep the connection open (net/http's figure).
const maxDrain = 256 << 10

// lingerFor bounds how long a connection closed with a body left unread
// waits for the client to stop sending.
const lingerFor = 500 * time.Millisecond

// linger sends resp and closes a connection whose client may still be
// sending a body: a close with unread bytes makes the kernel answer with a
// reset, which can discard the response before the client has read it (a
// 413 for a body too large shows up as "connection reset by peer"). After
// the response it shuts the sending side (the client sees the response and
// its end), then reads and drops what the client still sends until it
// stops or lingerFor passes (past lingerMax bytes it only waits), much as
// net/http does before such a close. fasthttp closes the connection after.
func linger(c net.Conn, resp *fasthttp.Response) {
	_ = c.SetWriteDeadline(time.Now().Add(lingerFor))
	bw := bufio.NewWriter(c)
	if resp.Write(bw) != nil || bw.Flush() != nil {
		return
	}
	if u, ok := c.(interface{ UnsafeConn() net.Conn }); ok {
		if cw, ok := u.UnsafeConn().(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
	}
	deadline := time.Now().Add(lingerFor)
	_ = c.SetReadDeadline(deadline)
	if n, _ := io.Copy(io.Discard, io.LimitReader(c, lingerMax)); n >= lingerMax {
		// Still sending: leave it the rest of the time to read the
		// answer, without reading more (net/http only waits).
		time.Sleep(time.Until(deadline))
	}
}

// lingerMax bounds what linger reads.
const lingerMax = 1 << 20

// streamBody is a request's body as the handler reads it: from the
// connection, or from what fasthttp read before the handler.
type streamBody struct {
	r            io.Reader
	started, eof bool
	read         int64 // bytes read
}

func (b *streamBody) Read(p []byte) (int, error) {
	b.started = true
	n, err := b.r.Read(p)
	b.read += int64(n)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (b *streamBody) Close() error { return nil }

// drain reads and drops the rest of a body its handler left unread, as
// net/http does, and tells whether the connection can be kept. It cannot
// after a handler that stopped reading (its limit answered), nor when more
// than maxDrain is still declared (length of the whole body, or -1 when
// unknown), nor when the rest turns out longer than maxDrain.
func (b *streamBody) drain(declared int64) bool {
	if b.started || declared-b.read > maxDrain {
		return false
	}
	n, err := io.CopyN(io.Discard, b, maxDrain+1)
	return err == io.EOF && n <= maxDrain
}

// check refuses what net/http refuses before any handler: an HTTP version
// it cannot read, and the signs of request smuggling.
func check(ctx *fasthttp.RequestCtx) error {
	proto := ctx.Request.Header.Protocol()
	if _, _, ok := http.ParseHTTPVersion(intern(proto)); !ok {
		return &BadRequestError{Reason: fmt.Sprintf("malformed HTTP version %q", proto)}
	}
	raw := ctx.Request.Header.RawHeaders()
	if cl := ctx.Request.Header.ContentLength(); cl == -1 || hasHeader(raw, "transfer-encoding") {
		// fasthttp reads "chunked" (-1), and "identity" without
		// Content-Length as no body (-2); both headers, or a coding other
		// than chunked, are signs of request smuggling (RFC 9112 §6.3).
		if hasHeader(raw, "content-length") {
			return &BadRequestError{Reason: "both Content-Length and Transfer-Encoding given"}
		}
		if cl != -1 {
			return &BadRequestError{Reason: "Transfer-Encoding other than chunked"}
		}
	}
	return nil
}

// request converts fasthttp's request, which check passed, into net/http's,
// as net/http's own server would have parsed it.
func request(ctx *fasthttp.RequestCtx) (*http.Request, error) {
	uri := string(ctx.RequestURI())
	u, err := url.ParseRequestURI(uri)
	if err != nil {
		return nil, &BadRequestError{Reason: fmt.Sprintf("malformed request target: %v", err)}
	}
	proto := intern(ctx.Request.Header.Protocol())
	major, minor, _ := http.ParseHTTPVersion(proto)
	r := &http.Request{
		Method:     intern(ctx.Method()),
		URL:        u,
		Proto:      proto,
		ProtoMajor: major,
		ProtoMinor: minor,
		Host:       string(ctx.Host()),
		RemoteAddr: ctx.RemoteAddr().String(),
		RequestURI: uri,
		Close:      ctx.Request.Header.ConnectionClose(),
		TLS:        ctx.TLSConnectionState(),
	}
	r.Header, r.TransferEncoding = header(ctx)
	switch {
	case ctx.Request.IsBodyStream():
		// StreamRequestBody: the handler reads it, and its own limit
		// answers.
		r.Body = &streamBody{r: ctx.RequestBodyStream()}
		r.ContentLength = int64(ctx.Request.Header.ContentLength())
		if r.ContentLength < 0 {
			r.ContentLength = -1
		}
	case len(ctx.PostBody()) > 0: // read whole before the handler
		body := ctx.PostBody()
		r.Body = &streamBody{r: bytes.NewReader(body)}
		r.ContentLength = int64(len(body))
		if len(r.TransferEncoding) > 0 {
			r.ContentLength = -1 // chunked: unknown until read, as in net/http
		}
	default:
		r.Body = http.NoBody
	}
	return r, nil
}

// Header is the request's header as a net/http handler would see it in
// Request.Header: canonical names, without Host (net/http keeps it in
// Request.Host) and Transfer-Encoding (in Request.TransferEncoding).
func Header(ctx *fasthttp.RequestCtx) http.Header {
	h, _ := header(ctx)
	return h
}

// header gives Request.Header and Request.TransferEncoding.
func header(ctx *fasthttp.RequestCtx) (http.Header, []string) {
	// The values share one string and their slices one array (each of
	// capacity 1, so a handler's append copies): a request's headers cost
	// three allocations, not three each.
	h := make(http.Header, ctx.Request.Header.Len())
	var te []string
	raw := ctx.Request.Header.RawHeaders()
	size, count := 0, 0
	for _, v := range ctx.Request.Header.All() {
		size, count = size+len(v), count+1
	}
	var all strings.Builder
	all.Grow(size)
	for _, v := range ctx.Request.Header.All() {
		all.Write(v)
	}
	values, slab, at := all.String(), make([]string, count), 0
	for k, v := range ctx.Request.Header.All() {
		value := values[at : at+len(v)]
		at += len(v)
		key := headerKey(k)
		switch key {
		case "Host":
			continue // net/http keeps it in Host only
		case "Connection":
			// fasthttp adds "Connection: close" to an HTTP/1.0 request
			// that did not ask to be kept alive; net/http shows what came.
			if !hasHeader(raw, "connection") {
				continue
			}
		case "Transfer-Encoding":
			te = append(te, strings.ToLower(value))
			continue
		}
		if vs, ok := h[key]; ok {
			h[key] = append(vs, value)
			continue
		}
		slab[0] = value
		h[key], slab = slab[:1:1], slab[1:]
	}
	return h, te
}

// knownHeaders are canonical names of headers that webhooks and browsers
// send, keyed by themselves: fasthttp gives most names in this form, and
// headerKey finds them without allocating.
var knownHeaders = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		"Accept", "Accept-Encoding", "Accept-Language", "Authorization", "Cache-Control",
		"Connection", "Content-Length", "Content-Type", "Cookie", "Host", "Origin", "Pragma",
		"Referer", "User-Agent", "Traceparent", "Tracestate", "Via", "Forwarded",
		"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Port", "X-Forwarded-Proto",
		"X-Real-Ip", "X-Request-Id", "X-Amzn-Trace-Id", "X-Envoy-External-Address",
		"Sec-Fetch-Site", "Sec-Fetch-Mode", "Sec-Fetch-Dest", "Sec-Ch-Ua", "Sec-Ch-Ua-Mobile", "Sec-Ch-Ua-Platform",
		"Typeform-Signature", "Sm-Signature", "Hmac", "X-Delighted-Webhook-Signature",
		"X-Rapport-Signature", "Idempotency-Key",
	} {
		k = http.CanonicalHeaderKey(k)
		m[k] = k
	}
	return m
}()

// intern gives the usual methods and protocols without allocating.
func intern(b []byte) string {
	switch string(b) {
	case "HTTP/1.1":
		return "HTTP/1.1"
	case "HTTP/1.0":
		return "HTTP/1.0"
	case http.MethodPost:
		return http.MethodPost
	case http.MethodGet:
		return http.MethodGet
	case http.MethodHead:
		return http.MethodHead
	case http.MethodOptions:
		return http.MethodOptions
	}
	return string(b)
}

// headerKey is a header name as net/http writes it.
func headerKey(k []byte) string {
	if s, ok := knownHeaders[string(k)]; ok {
		return s
	}
	return http.CanonicalHeaderKey(string(k))
}

// hasHeader reports whether the raw header block has a field named name,
// in any case, without allocating.
func hasHeader(raw []byte, name string) bool {
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		if len(line) > len(name) && line[len(name)] == ':' && bytes.EqualFold(line[:len(name)], []byte(name)) {
			return true
		}
	}
	return false
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
	_, typed := w.header["Content-Type"]
	w.sniff = !typed && bodyAllowed(code)
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
