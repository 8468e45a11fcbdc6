package fastserve

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/valyala/fasthttp"
)

// seen is what the echo handler saw of a request.
type seen struct {
	Method, Path, RawQuery, Proto, Host, RequestURI string
	PathValue                                       string
	Header                                          map[string][]string
	Cookie                                          string
	Body                                            string
	BodyErr                                         string
	ContentLength                                   int64
	RemoteIsLoopback                                bool
	Close                                           bool
	TransferEncoding                                []string
}

// mux serves the cases the table below asks for.
func mux(t *testing.T) http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("/echo/{name}", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64))
		s := seen{
			Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Proto: r.Proto, Host: r.Host,
			RequestURI: r.RequestURI, PathValue: r.PathValue("name"), Header: map[string][]string{},
			Body: string(body), ContentLength: r.ContentLength, Close: r.Close, TransferEncoding: r.TransferEncoding,
		}
		if err != nil {
			s.BodyErr = err.Error()
		}
		for _, k := range []string{"X-One", "X-Many", "Content-Type", "Content-Length", "Origin", "Host", "Connection", "Transfer-Encoding"} {
			if v, ok := r.Header[k]; ok {
				s.Header[k] = v
			}
		}
		if c, err := r.Cookie("assign"); err == nil {
			s.Cookie = c.Value
		}
		if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			s.RemoteIsLoopback = net.ParseIP(h).IsLoopback()
		}
		if r.Context().Err() != nil {
			t.Errorf("the request's context is done while its handler runs")
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Add("X-Reply", "a")
		w.Header().Add("X-Reply", "b")
		code := http.StatusAccepted
		if err != nil {
			code = http.StatusRequestEntityTooLarge
		}
		w.WriteHeader(code)
		w.Header().Set("X-After", "ignored") // net/http ignores changes after WriteHeader
		_ = json.NewEncoder(w).Encode(s)
	})
	m.HandleFunc("/nocontent", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "https://shop.example")
		w.WriteHeader(http.StatusNoContent)
		if _, err := w.Write([]byte("x")); err != http.ErrBodyNotAllowed {
			t.Errorf("a body after 204: %v, want http.ErrBodyNotAllowed", err)
		}
	})
	m.HandleFunc("/sniff", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "<html><body>hi</body></html>")
	})
	m.HandleFunc("/reject", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusUnauthorized) // without reading the body
	})
	m.HandleFunc("/empty", func(http.ResponseWriter, *http.Request) {})
	m.HandleFunc("/close", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusAccepted)
	})
	m.HandleFunc("/after", func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		go func() {
			<-ctx.Done() // must be canceled once the handler returned
			w.Header()   // nothing else is safe here
			canceled <- struct{}{}
		}()
		_, _ = io.WriteString(w, "ok")
	})
	m.HandleFunc("/panic", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, "partial")
		panic("boom")
	})
	return m
}

var canceled = make(chan struct{}, 8)

// serveBoth serves h with net/http and with this package, on loopback.
func serveBoth(t *testing.T, h http.Handler, log logr.Logger) (std, fast string) {
	t.Helper()
	std, fast, _ = serveAll(t, h, log)
	return std, fast
}

// serveAll serves h with net/http, with this package streaming bodies (as
// the collector does) and with it reading bodies whole before the handler.
func serveAll(t *testing.T, h http.Handler, log logr.Logger) (std, fast, buffered string) {
	t.Helper()
	ln1, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: h, ErrorLog: nil}
	fs := &fasthttp.Server{
		Handler: Handler(context.Background(), h, log, nil, nil), NoDefaultContentType: true, NoDefaultServerHeader: true,
		MaxRequestBodySize: 32, StreamRequestBody: true,
	}
	ln3, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bs := &fasthttp.Server{Handler: Handler(context.Background(), h, log, nil, nil), NoDefaultContentType: true, NoDefaultServerHeader: true}
	go func() { _ = hs.Serve(ln1) }()
	go func() { _ = fs.Serve(ln2) }()
	go func() { _ = bs.Serve(ln3) }()
	t.Cleanup(func() { _ = hs.Close(); _ = fs.Shutdown(); _ = bs.Shutdown() })
	return ln1.Addr().String(), ln2.Addr().String(), ln3.Addr().String()
}

// exchange writes raw to addr and reads one response.
func exchange(t *testing.T, addr, raw string) (*http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	method := raw[:strings.IndexByte(raw, ' ')]
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%s: reading the response: %v", addr, err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s: reading the body: %v", addr, err)
	}
	return resp, string(body)
}

// TestMatchesNetHTTP sends the same bytes to net/http and to this package
// serving the same handler, and compares what the handler saw and what the
// client got back.
func TestMatchesNetHTTP(t *testing.T) {
	std, streamed, buffered := serveAll(t, mux(t), logr.Discard())
	long := strings.Repeat("x", 50) // over the server's 32-byte buffer, under the handler's 64
	tooLong := strings.Repeat("y", 100)
	cases := []struct {
		name, raw string
		// header keys to compare besides the status, the body and Content-Type
		headers []string
	}{
		{"post with body, query, repeated headers, cookies", "POST /echo/typeform?x=1&y=%20z HTTP/1.1\r\nHost: collector.example\r\nX-One: 1\r\nX-Many: a\r\nX-Many: b\r\nContent-Type: application/json\r\nOrigin: https://shop.example\r\nCookie: other=1; assign=v1.abc-DEF_123\r\nContent-Length: 11\r\n\r\n{\"score\":5}", []string{"X-Reply", "X-After", "Content-Length"}},
		{"get without body", "GET /echo/a%2Fb HTTP/1.1\r\nHost: h\r\n\r\n", nil},
		{"http/1.0", "GET /echo/old HTTP/1.0\r\nHost: h\r\n\r\n", nil},
		{"connection close", "GET /echo/c HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", []string{"Connection"}},
		{"chunked body", "POST /echo/ch HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", nil},
		{"streamed body under the handler's limit", "POST /echo/s HTTP/1.1\r\nHost: h\r\nContent-Length: 50\r\n\r\n" + long, nil},
		{"body over the handler's limit", "POST /echo/big HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n" + tooLong, nil},
		{"head", "HEAD /echo/h HTTP/1.1\r\nHost: h\r\n\r\n", nil},
		{"204 with headers", "OPTIONS /nocontent HTTP/1.1\r\nHost: h\r\n\r\n", []string{"Access-Control-Allow-Origin", "Content-Length"}},
		{"sniffed content type", "GET /sniff HTTP/1.1\r\nHost: h\r\n\r\n", nil},
		{"a handler that answers without reading the body", "POST /reject HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n{\"score\":5}", nil},
		{"empty handler", "GET /empty HTTP/1.1\r\nHost: h\r\n\r\n", []string{"Content-Length"}},
		{"handler closes", "GET /close HTTP/1.1\r\nHost: h\r\n\r\n", []string{"Connection"}},
		{"no route", "GET /nowhere HTTP/1.1\r\nHost: h\r\n\r\n", nil},
		{"method not allowed by the pattern's path", "GET /echo/ HTTP/1.1\r\nHost: h\r\n\r\n", nil},
	}
	for _, tc := range cases {
		for _, fast := range []struct{ name, addr string }{{"streamed", streamed}, {"buffered", buffered}} {
			t.Run(tc.name+"/"+fast.name, func(t *testing.T) {
				r1, b1 := exchange(t, std, tc.raw)
				r2, b2 := exchange(t, fast.addr, tc.raw)
				if r1.StatusCode != r2.StatusCode {
					t.Errorf("status: net/http %d, fastserve %d", r1.StatusCode, r2.StatusCode)
				}
				if b1 != b2 {
					t.Errorf("body:\nnet/http  %s\nfastserve %s", b1, b2)
				}
				for _, k := range append([]string{"Content-Type"}, tc.headers...) {
					if v1, v2 := r1.Header.Values(k), r2.Header.Values(k); !slices.Equal(v1, v2) {
						t.Errorf("header %s: net/http %q, fastserve %q", k, v1, v2)
					}
				}
				if r1.Close != r2.Close {
					t.Errorf("connection closes after the response: net/http %v, fastserve %v", r1.Close, r2.Close)
				}
				if r2.Header.Get("Server") != "" {
					t.Errorf("fastserve sent Server: %q", r2.Header.Get("Server"))
				}
				t.Logf("%d %s", r2.StatusCode, strings.TrimSpace(b2))
			})
		}
	}
}

func TestContextCanceledAfterHandler(t *testing.T) {
	_, fast := serveBoth(t, mux(t), logr.Discard())
	if r, _ := exchange(t, fast, "GET /after HTTP/1.1\r\nHost: h\r\n\r\n"); r.StatusCode != http.StatusOK {
		t.Fatalf("status %d", r.StatusCode)
	}
	select {
	case <-canceled:
	case <-time.After(10 * time.Second):
		t.Fatal("the request's context was not canceled after its handler returned")
	}
}

func TestPanicAnswers500AndCloses(t *testing.T) {
	lines := make(chan string, 8)
	log := funcr.New(func(_, args string) { lines <- args }, funcr.Options{})
	_, fast := serveBoth(t, mux(t), log)
	r, body := exchange(t, fast, "GET /panic HTTP/1.1\r\nHost: h\r\n\r\n")
	if r.StatusCode != http.StatusInternalServerError || !r.Close || strings.Contains(body, "partial") {
		t.Fatalf("got %d close=%v body %q, want a 500 without the partial answer that closes the connection", r.StatusCode, r.Close, body)
	}
	expectLogged(t, lines, "boom", "/panic")
	// The server still serves.
	if r, _ := exchange(t, fast, "GET /empty HTTP/1.1\r\nHost: h\r\n\r\n"); r.StatusCode != http.StatusOK {
		t.Fatalf("after the panic: status %d", r.StatusCode)
	}
}

// TestRefusesContentLengthWithTransferEncoding: net/http follows
// Transfer-Encoding and keeps the connection; this package refuses the pair
// and closes it (RFC 9112 §6.3 allows refusing and requires closing).
func TestRefusesContentLengthWithTransferEncoding(t *testing.T) {
	_, fast := serveBoth(t, mux(t), logr.Discard())
	for _, raw := range []string{
		"POST /echo/s HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"POST /echo/s HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\ncontent-length: 4\r\n\r\n0\r\n\r\n",
		"POST /echo/s HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: identity\r\n\r\nabcd",
	} {
		r, body := exchange(t, fast, raw)
		if r.StatusCode != http.StatusBadRequest || !r.Close || !strings.Contains(body, "both Content-Length and Transfer-Encoding") {
			t.Fatalf("%q: got %d close=%v %q, want 400 naming both headers, closing", raw, r.StatusCode, r.Close, body)
		}
	}
	// "identity" without Content-Length: fasthttp would take the body for
	// the next request.
	r, body := exchange(t, fast, "POST /echo/s HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\nGET /panic HTTP/1.1\r\nHost: h\r\n\r\n")
	if r.StatusCode != http.StatusBadRequest || !r.Close || !strings.Contains(body, "other than chunked") {
		t.Fatalf("identity alone: got %d close=%v %q, want 400, closing", r.StatusCode, r.Close, body)
	}
	// Chunked alone is served.
	if r, _ := exchange(t, fast, "POST /echo/s HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"); r.StatusCode != http.StatusAccepted {
		t.Fatalf("chunked alone: %d", r.StatusCode)
	}
}

func TestBadRequestTarget(t *testing.T) {
	_, fast := serveBoth(t, mux(t), logr.Discard())
	r, body := exchange(t, fast, "GET /%zz HTTP/1.1\r\nHost: h\r\n\r\n")
	if r.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d (%s), want 400", r.StatusCode, body)
	}
	t.Log(body)
}

// TestRefusalOfALargeBodyReachesTheClient sends bodies far over what the
// handler takes, which it refuses without reading them all: the client must
// get the refusal, not a connection reset. (A server that closes a
// connection with unread data in its receive buffer makes the kernel send a
// reset, which can discard the response before the client reads it;
// net/http lingers before closing, and so must this package.)
func TestRefusalOfALargeBodyReachesTheClient(t *testing.T) {
	m := http.NewServeMux()
	m.HandleFunc("POST /unread", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusRequestEntityTooLarge)
	})
	m.HandleFunc("POST /partly", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadFull(r.Body, make([]byte, 10))
		w.WriteHeader(http.StatusRequestEntityTooLarge)
	})
	std, fast := serveBoth(t, m, logr.Discard())
	// Just over the collector's 1 MiB, many times; and a body the server
	// stops reading before the client stops sending, which takes the
	// linger's whole 500 ms.
	for _, tt := range []struct{ size, times int }{{1<<20 + 100, 20}, {8 << 20, 2}} {
		body := bytes.Repeat([]byte("x"), tt.size)
		for _, srv := range []struct{ name, addr string }{{"net/http", std}, {"fastserve", fast}} {
			for _, path := range []string{"/unread", "/partly"} {
				failed := 0
				for range tt.times {
					c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
					resp, err := c.Post("http://"+srv.addr+path, "application/octet-stream", bytes.NewReader(body))
					if err != nil {
						failed++
						continue
					}
					_ = resp.Body.Close()
					if resp.StatusCode != http.StatusRequestEntityTooLarge {
						t.Fatalf("%s %s: status %d, want 413", srv.name, path, resp.StatusCode)
					}
				}
				t.Logf("%d bytes, %s %s: %d of %d refusals lost", tt.size, srv.name, path, failed, tt.times)
				if failed > 0 && srv.name == "fastserve" {
					t.Errorf("%s %s: %d of %d refusals of a %d-byte body lost to a reset", srv.name, path, failed, tt.times, tt.size)
				}
			}
		}
	}
}

// BenchmarkRequest measures the conversion of a webhook's request (the
// headers Typeform sends) into net/http's.
//
//	go test ./internal/fastserve/ -run '^$' -bench Request -benchmem
func BenchmarkRequest(b *testing.B) {
	body := strings.Repeat("x", 1000)
	raw := "POST /v1/namespaces/shop/sources/typeform/webhook HTTP/1.1\r\nHost: collector.example\r\n" +
		"User-Agent: Typeform Webhooks\r\nContent-Type: application/json\r\nAccept-Encoding: gzip\r\n" +
		"Typeform-Signature: sha256=2uV5CBBXc6hmhqY3xwJK8l0iBJ0bDhKbXfbbA/zCGDM=\r\n" +
		"X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\nContent-Length: 1000\r\n\r\n" + body
	var ctx fasthttp.RequestCtx
	if err := ctx.Request.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		r, err := request(&ctx)
		if err != nil || r.Header.Get("Typeform-Signature") == "" || r.ContentLength != 1000 {
			b.Fatal(r, err)
		}
	}
}

// TestNative: a Native handler serves what it takes, after the checks and
// with the panic handling every request gets; what it declines reaches the
// net/http handler untouched, and Header gives what that handler sees.
func TestNative(t *testing.T) {
	lines := make(chan string, 8)
	log := funcr.New(func(_, args string) { lines <- args }, funcr.Options{})
	offered := make(chan string, 16)
	headers := make(chan http.Header, 16)
	done := make(chan context.Context, 16)
	native := func(rctx context.Context, ctx *fasthttp.RequestCtx) bool {
		path := string(ctx.Path())
		offered <- path
		switch path {
		case "/native":
			done <- rctx
			ctx.SetStatusCode(http.StatusCreated)
			ctx.SetBodyString("native")
			return true
		case "/native-panic":
			panic("native boom")
		}
		headers <- Header(ctx)
		return false
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fs := &fasthttp.Server{Handler: Handler(context.Background(), mux(t), log, nil, native),
		NoDefaultContentType: true, NoDefaultServerHeader: true, MaxRequestBodySize: 32, StreamRequestBody: true}
	go func() { _ = fs.Serve(ln) }()
	t.Cleanup(func() { _ = fs.Shutdown() })
	addr := ln.Addr().String()

	r, body := exchange(t, addr, "POST /native HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi")
	if r.StatusCode != http.StatusCreated || body != "native" || <-offered != "/native" {
		t.Errorf("a request Native takes: %d %q, want 201 \"native\"", r.StatusCode, body)
	}
	select {
	case rctx := <-done:
		select {
		case <-rctx.Done():
		case <-time.After(10 * time.Second):
			t.Error("Native's context was not canceled after it returned")
		}
	default:
		t.Error("Native did not serve /native")
	}

	raw := "POST /echo/declined HTTP/1.1\r\nHost: h\r\nX-One: 1\r\nX-Many: a\r\nX-Many: b\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
	r, body = exchange(t, addr, raw)
	var s seen
	if err := json.Unmarshal([]byte(body), &s); err != nil || r.StatusCode != http.StatusAccepted || s.PathValue != "declined" || s.Body != "{}" {
		t.Fatalf("a request Native declines: %d %q (%v), want the echo handler's 202 with the body", r.StatusCode, body, err)
	}
	<-offered
	h := <-headers
	for k, v := range s.Header {
		if !slices.Equal(h[k], v) {
			t.Errorf("Header(%s) = %q, the handler saw %q", k, h[k], v)
		}
	}
	if _, ok := h["Host"]; ok {
		t.Errorf("Header holds Host %q; net/http keeps it in Request.Host only", h["Host"])
	}

	r, _ = exchange(t, addr, "POST /native HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
	if r.StatusCode != http.StatusBadRequest || !r.Close {
		t.Errorf("a smuggling request: %d close=%v, want 400 and the connection closed", r.StatusCode, r.Close)
	}
	select {
	case p := <-offered:
		t.Errorf("Native was offered %s, which the checks refuse", p)
	default:
	}

	r, body = exchange(t, addr, "GET /native-panic HTTP/1.1\r\nHost: h\r\n\r\n")
	if r.StatusCode != http.StatusInternalServerError || !r.Close {
		t.Errorf("a panic in Native: %d close=%v %q, want 500 and the connection closed", r.StatusCode, r.Close, body)
	}
	expectLogged(t, lines, "native boom", "/native-panic")
}

// expectLogged waits for a log line and requires each of want in it.
func expectLogged(t *testing.T, lines <-chan string, want ...string) {
	t.Helper()
	select {
	case line := <-lines:
		for _, w := range want {
			if !strings.Contains(line, w) {
				t.Errorf("logged %q, want %q in it", line, w)
			}
		}
	case <-time.After(10 * time.Second):
		t.Errorf("nothing was logged; want a line with %q", want)
	}
}
