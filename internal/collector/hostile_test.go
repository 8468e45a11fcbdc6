package collector

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/rapport-dev/rapport/internal/fastserve"
	"github.com/rapport-dev/rapport/internal/metrics"
)

// TestHostileRequests sends requests an attacker or a broken client would,
// and checks each is refused with the right code and counts nothing.
func TestHostileRequests(t *testing.T) {
	s, _ := newUnitServer(t, Options{RateLimit: -1})
	h := s.Handler()
	series := feedbackSeries(t) // other tests of the package share the registry
	path := "/v1/namespaces/shop/experiments/checkout/responses"
	one := func(score string) string {
		return `{"responses":[{"variant":"control","score":` + score + `}]}`
	}
	tests := []struct {
		name   string
		body   string
		header map[string]string
		code   int
	}{
		{"a body over 1 MiB", `{"responses":[` + strings.Repeat(`{"variant":"control","score":5},`, 40000) + `{"variant":"control","score":5}]}`, nil, http.StatusRequestEntityTooLarge},
		{"one huge string", `{"responses":[{"variant":"` + strings.Repeat("x", 900_000) + `","score":5}]}`, nil, http.StatusBadRequest},
		{"deeply nested JSON", strings.Repeat(`{"responses":`, 5000) + `[]` + strings.Repeat(`}`, 5000), nil, http.StatusBadRequest},
		{"deep array in an unknown field", `{"x":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`, nil, http.StatusBadRequest},
		{"NaN score", one("NaN"), nil, http.StatusBadRequest},
		{"quoted NaN score", one(`"NaN"`), nil, http.StatusBadRequest},
		{"Infinity score", one("Infinity"), nil, http.StatusBadRequest},
		{"overflowing score", one("99999999999999999999999999"), nil, http.StatusBadRequest},
		{"exponent score", one("4e0"), nil, http.StatusBadRequest},
		{"negative score", one("-4"), nil, http.StatusBadRequest},
		{"fractional score", one("4.5"), nil, http.StatusBadRequest},
		{"null score", one("null"), nil, http.StatusBadRequest},
		{"boolean score", one("true"), nil, http.StatusBadRequest},
		{"duplicate keys smuggling a second score", `{"responses":[{"variant":"control","score":5,"score":9}]}`, nil, http.StatusBadRequest},
		{"trailing garbage after the object", one("5") + `{"responses":[]}`, nil, http.StatusBadRequest},
		{"invalid UTF-8", "{\"responses\":[{\"variant\":\"\xff\xfe\",\"score\":5}]}", nil, http.StatusBadRequest},
		{"XML", `<responses><r score="5"/></responses>`, map[string]string{"Content-Type": "application/xml"}, http.StatusUnsupportedMediaType},
		{"form data", `score=5`, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, http.StatusUnsupportedMediaType},
		{"no content type", one("5"), map[string]string{"Content-Type": ""}, http.StatusUnsupportedMediaType},
		{"empty body", "", nil, http.StatusBadRequest},
		{"token of no one", one("5"), map[string]string{"Authorization": "Bearer guess"}, http.StatusUnauthorized},
		{"an Idempotency-Key with a newline", one("5"), map[string]string{"Idempotency-Key": "a\nb"}, http.StatusBadRequest},
		{"an Idempotency-Key of 1000 bytes", one("5"), map[string]string{"Idempotency-Key": strings.Repeat("k", 1000)}, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := post(t, h, path, tt.body, tt.header)
			if w.Code != tt.code {
				t.Fatalf("code = %d (%s), want %d", w.Code, w.Body.String(), tt.code)
			}
			if !strings.Contains(w.Body.String(), `"error"`) {
				t.Fatalf("body %q is not a JSON error", w.Body.String())
			}
		})
	}
	if n := feedbackSeries(t) - series; n != 0 {
		t.Fatalf("hostile requests created %d feedback series, want 0", n)
	}
}

func feedbackSeries(t *testing.T) int {
	ch := make(chan prometheus.Metric, 1024)
	go func() { metrics.FeedbackResponses.Collect(ch); close(ch) }()
	n := 0
	for m := range ch {
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			t.Fatal(err)
		}
		for _, l := range d.GetLabel() {
			if l.GetName() == "namespace" && l.GetValue() == "shop" {
				n++
			}
		}
	}
	return n
}

// TestBogusExperimentNamesAreBounded posts to 10,000 distinct experiment
// names that do not exist: each gets 404, and neither memory nor metric
// series grow with them.
func TestBogusExperimentNamesAreBounded(t *testing.T) {
	s, _ := newUnitServer(t, Options{RateLimit: -1})
	h := s.Handler()
	series := feedbackSeries(t)
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for i := range 10_000 {
		w := post(t, h, fmt.Sprintf("/v1/namespaces/shop/experiments/bogus-%05d/responses", i), `{"responses":[{"variant":"control","score":5}]}`, nil)
		if w.Code != http.StatusNotFound {
			t.Fatalf("bogus-%05d: code %d, want 404", i, w.Code)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&m1)
	grown := int64(m1.HeapAlloc) - int64(m0.HeapAlloc)
	t.Logf("heap grew by %d bytes after 10,000 bogus names", grown)
	if grown > 4<<20 {
		t.Fatalf("heap grew by %d bytes: state is kept per bogus name", grown)
	}
	s.commit.mu.Lock()
	queues := len(s.commit.queues)
	s.commit.mu.Unlock()
	if queues != 0 {
		t.Fatalf("%d commit queues kept for unknown experiments", queues)
	}
	if n := feedbackSeries(t) - series; n != 0 {
		t.Fatalf("%d feedback series for unknown experiments", n)
	}
}

// serveLoopback serves s on a loopback port until ctx is done; done
// receives what Serve returned.
func serveLoopback(ctx context.Context, t *testing.T, s *Server) (addr string, done <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	return ln.Addr().String(), served
}

// requireServeEnded fails unless Serve returned nil within 10 s and its
// listener at addr no longer accepts connections.
func requireServeEnded(t *testing.T, addr string, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its context was canceled")
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		_ = c.Close()
		t.Fatal("the listener still accepts connections after shutdown")
	}
}

// TestServeEndsWhenCanceledEarly: a context canceled before the server is
// up still ends Serve and closes the listener.
func TestServeEndsWhenCanceledEarly(t *testing.T) {
	s, _ := newUnitServer(t, Options{RateLimit: -1})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	addr, done := serveLoopback(ctx, t, s)
	requireServeEnded(t, addr, done)
}

// TestSlowClientIsCutOff opens a connection that sends its headers one byte
// at a time (slowloris): the server closes it after HeaderTimeout (here
// more than twice fastserve.DeadlineSlack, so that the deadline is one the
// connection gives its descriptor at a read, not at once), within the
// slack.
func TestSlowClientIsCutOff(t *testing.T) {
	const timeout = 2*fastserve.DeadlineSlack + 500*time.Millisecond
	s, _ := newUnitServer(t, Options{RateLimit: -1, HeaderTimeout: timeout})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, _ := serveLoopback(ctx, t, s)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	closed := make(chan struct{})
	go func() {
		// The server answers 408 or just closes; either way the read ends.
		_, _ = io.Copy(io.Discard, bufio.NewReader(conn))
		close(closed)
	}()
	header := "POST /v1/namespaces/shop/experiments/checkout/responses HTTP/1.1\r\nHost: x\r\n"
	for i := 0; ; i++ {
		select {
		case <-closed:
			d := time.Since(start)
			if d < timeout {
				t.Fatalf("the slow client was cut off after %s, before the header timeout of %s", d, timeout)
			}
			// The upper bound leaves a loaded machine's scheduling its time.
			if d > timeout+fastserve.DeadlineSlack+2*time.Second {
				t.Fatalf("the slow client was held for %s; the header timeout is %s, with a slack of %s", d, timeout, fastserve.DeadlineSlack)
			}
			t.Logf("the slow client was cut off after %s (header timeout %s, slack %s)", d, timeout, fastserve.DeadlineSlack)
			return
		case <-time.After(50 * time.Millisecond): // the slow client's pace is the test's subject
		}
		if _, err := conn.Write([]byte{header[i%len(header)]}); err != nil {
			return // the server closed the connection
		}
		if time.Since(start) > 10*time.Second {
			t.Fatal("the server never cut off a client sending headers one byte every 50ms")
		}
	}
}

// TestHostileRequestsOnTheWire sends what only the HTTP server sees (no
// handler can): headers over the limit, a malformed request, a smuggling
// attempt, bodies over the limit read from the connection; each is refused
// with the collector's JSON error, and a good answer on the same server is
// accepted.
func TestHostileRequestsOnTheWire(t *testing.T) {
	s, _ := newUnitServer(t, Options{RateLimit: -1})
	ctx, cancel := context.WithCancel(context.Background())
	addr, served := serveLoopback(ctx, t, s)
	t.Cleanup(func() { cancel(); <-served })
	const path = "/v1/namespaces/shop/experiments/checkout/responses"
	head := "POST " + path + " HTTP/1.1\r\nHost: collector\r\nAuthorization: Bearer s3cret\r\nContent-Type: application/json\r\n"
	good := `{"responses":[{"variant":"one-page","score":4}]}`
	big := `{"responses":[` + strings.Repeat(`{"variant":"control","score":5},`, 40000) + `{"variant":"control","score":5}]}`
	chunked := func(body string) string {
		var b strings.Builder
		for len(body) > 0 {
			n := min(len(body), 32<<10)
			fmt.Fprintf(&b, "%x\r\n%s\r\n", n, body[:n])
			body = body[n:]
		}
		return b.String() + "0\r\n\r\n"
	}
	tests := []struct {
		name, raw string
		code      int
		message   string
	}{
		{"a good answer", head + fmt.Sprintf("Content-Length: %d\r\n\r\n", len(good)) + good, http.StatusAccepted, `"accepted":1`},
		{"headers over 16 KiB", head + "X-Pad: " + strings.Repeat("p", 17<<10) + "\r\nContent-Length: 0\r\n\r\n", http.StatusRequestHeaderFieldsTooLarge, "headers over 16384 bytes"},
		{"a malformed request line", "GARBAGE\r\n\r\n", http.StatusBadRequest, "malformed HTTP request"},
		{"Content-Length and Transfer-Encoding both", head + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", http.StatusBadRequest, "both Content-Length and Transfer-Encoding given"},
		{"a declared body over 1 MiB", head + fmt.Sprintf("Content-Length: %d\r\n\r\n", len(big)) + big, http.StatusRequestEntityTooLarge, "at most 1048576 are accepted"},
		{"a chunked body over 1 MiB", head + "Transfer-Encoding: chunked\r\n\r\n" + chunked(big), http.StatusRequestEntityTooLarge, "larger than 1048576 bytes"},
		// Only the head and 16 KiB are sent (more than fasthttp reads
		// ahead of a handler, 8 KiB): a server that read a multipart body
		// before the handler would wait for the rest.
		{"a multipart body of 50 MB, declared", head[:strings.Index(head, "Content-Type")] + "Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 50000000\r\n\r\n--x\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\n" + strings.Repeat("m", 16<<10), http.StatusUnsupportedMediaType, `"multipart/form-data\" is not supported`},
		{"a chunked body under the limit", head + "Transfer-Encoding: chunked\r\n\r\n" + chunked(good), http.StatusAccepted, `"accepted":1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
			// The server may answer and close before the body is written.
			go func() { _, _ = io.WriteString(conn, tt.raw) }()
			res, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != tt.code || !strings.Contains(string(body), tt.message) {
				t.Fatalf("got %d %s, want %d with %q", res.StatusCode, body, tt.code, tt.message)
			}
			if tt.code != http.StatusAccepted && !strings.Contains(string(body), `"error"`) {
				t.Fatalf("body %q is not a JSON error", body)
			}
			t.Logf("%d %s", res.StatusCode, strings.TrimSpace(string(body)))
		})
	}
}
