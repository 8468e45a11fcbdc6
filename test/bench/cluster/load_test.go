//go:build bench

package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// requestFunc appends the raw bytes of request number seq (an HTTP/1.1
// request with its headers and body, as requestTemplate.append writes it)
// to buf and returns the result. Every seq must give a different answer
// (its own event id or respondent), so that none is a duplicate.
type requestFunc func(seq int64, buf []byte) []byte

// requestTemplate is the fixed part of the load's requests: a POST to one
// URL with headers that do not change.
type requestTemplate struct {
	head []byte // request line, Host and the fixed headers
}

// newRequestTemplate renders the request line and the fixed headers once.
func newRequestTemplate(target string, header http.Header) (requestTemplate, error) {
	u, err := url.Parse(target)
	if err != nil {
		return requestTemplate{}, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: %s\r\n", u.RequestURI(), u.Host)
	if err := header.WriteSubset(&b, nil); err != nil {
		return requestTemplate{}, err
	}
	return requestTemplate{head: b.Bytes()}, nil
}

// append writes the request with body and, when name is not empty, one
// more header (a signature that depends on the body).
func (t requestTemplate) append(buf []byte, name, value string, body []byte) []byte {
	return append(t.appendHead(buf, name, value, len(body)), body...)
}

// decimalLen is the length of n in decimal, as strconv.AppendInt writes it.
func decimalLen(n int64) int {
	l := 1
	if n < 0 {
		l++
	}
	for ; n >= 10 || n <= -10; n /= 10 {
		l++
	}
	return l
}

// appendHead writes the request up to its body, of length bytes, which
// the caller appends.
func (t requestTemplate) appendHead(buf []byte, name, value string, length int) []byte {
	buf = append(buf, t.head...)
	if name != "" {
		buf = append(buf, name...)
		buf = append(buf, ": "...)
		buf = append(buf, value...)
		buf = append(buf, "\r\n"...)
	}
	buf = append(buf, "Content-Length: "...)
	buf = strconv.AppendInt(buf, int64(length), 10)
	return append(buf, "\r\n\r\n"...)
}

// answerPrefix is the part of a browser answer's body that is the same for
// every answer of a run: the JSON up to the respondent's id, which is
// r<run>-<seq> (appendAnswer writes the rest).
func answerPrefix(assignment string, run int) string {
	return fmt.Sprintf(`{"assignment":%q,"respondent":"r%d-`, assignment, run)
}

// appendAnswer appends a browser answer's body to buf: prefix (from
// answerPrefix), seq in at least 15 digits, zero-padded (as %015d), and a
// score of 4.
func appendAnswer(buf []byte, prefix string, seq int64) []byte {
	buf = slices.Grow(buf, len(prefix)+32)
	buf = append(buf, prefix...)
	if seq < 0 {
		buf = append(buf, '-')
		seq = -seq
	}
	var digits [20]byte
	d := strconv.AppendInt(digits[:0], seq, 10)
	for range 15 - len(d) {
		buf = append(buf, '0')
	}
	buf = append(buf, d...)
	return append(buf, `","score":4}`...)
}

// loadResult is what drive measured.
type loadResult struct {
	accepted, rejected int64
	// rejectedBy counts the rejections by status code, "connection" (the
	// connection broke) or "dial".
	rejectedBy map[string]int64
	// latencies of the accepted requests, in ms, sorted.
	latencies []float64
}

// drive is the load generator: inFlight connections, each with one request
// on it at a time, as a provider's or a browser's HTTP/1.1 connection
// would, send next's requests until duration has passed; connection i goes
// to baseURLs[i % len(baseURLs)]'s host (as a Service spreads connections
// over replicas). A 202 counts as accepted (also one that closes the
// connection), anything else as rejected, by status; a broken or closed
// connection is re-dialled, and a connection whose dial fails stops.
//
// The load generator shares the machine's two cores with what it
// measures, so what it spends per request is taken from the result. Like
// wrk, it writes each request's bytes with one write and parses the
// responses itself, and it serves all connections from one thread over
// epoll (driveEpoll): one read and one write per request, nothing else.
// BENCH_LOAD=goroutines drives the load as it did before 2026-12-01, 18:30
// instead: a goroutine per connection, on Go's network poller, which also
// tries a read that finds nothing after each request, parks the goroutine
// and wakes it (see docs/benchmarks.md).
func drive(baseURLs []string, inFlight int, duration time.Duration, next requestFunc) loadResult {
	if os.Getenv("BENCH_LOAD") == "goroutines" {
		return driveGoroutines(baseURLs, inFlight, duration, next)
	}
	res, err := driveEpoll(baseURLs, inFlight, duration, next)
	if err != nil {
		res.rejectedBy["setup: "+err.Error()]++
		res.rejected++
	}
	return res
}

// driveGoroutines is drive with a goroutine per connection, each writing
// its request and reading the response through Go's net.Conn.
func driveGoroutines(baseURLs []string, inFlight int, duration time.Duration, next requestFunc) loadResult {
	var seq atomic.Int64
	var mu sync.Mutex
	res := loadResult{rejectedBy: map[string]int64{}}
	deadline := time.Now().Add(duration)
	var wg sync.WaitGroup
	for i := range inFlight {
		baseURL := baseURLs[i%len(baseURLs)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []float64
			rejectedBy := map[string]int64{}
			var conn *loadConn
			var buf []byte
			for time.Now().Before(deadline) {
				if conn == nil {
					c, err := dialLoad(baseURL)
					if err != nil {
						// The server is gone: this worker stops rather
						// than spin on dials for the rest of the run.
						rejectedBy["dial"]++
						break
					}
					conn = c
				}
				buf = next(seq.Add(1), buf[:0])
				start := time.Now()
				status, err := conn.do(buf)
				closed := errors.Is(err, errConnClose)
				switch {
				case err != nil && !closed:
					rejectedBy["connection"]++
				case status != http.StatusAccepted:
					rejectedBy[strconv.Itoa(status)]++
				default:
					mine = append(mine, float64(time.Since(start).Microseconds())/1000)
				}
				if err != nil {
					conn.close()
					conn = nil
				}
			}
			if conn != nil {
				conn.close()
			}
			mu.Lock()
			res.latencies = append(res.latencies, mine...)
			for k, n := range rejectedBy {
				res.rejectedBy[k] += n
				res.rejected += n
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.Float64s(res.latencies)
	res.accepted = int64(len(res.latencies))
	return res
}

// hostRoundTripMicros measures what this host's system calls cost now:
// the µs of one 64-byte round trip over a loopback TCP connection between
// two goroutines (two writes, two reads and two wake-ups, as an answer
// costs the load generator and the server), over about 200 ms. On this
// shared virtual machine it moves by a third from one minute to the next,
// and the collector's rate with it.
func hostRoundTripMicros() (float64, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	echoed := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			echoed <- err
			return
		}
		defer c.Close()
		_, err = io.Copy(c, c)
		echoed <- err
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return 0, err
	}
	msg, back := make([]byte, 64), make([]byte, 64)
	n, start := 0, time.Now()
	for time.Since(start) < 200*time.Millisecond {
		if _, err := c.Write(msg); err != nil {
			c.Close()
			return 0, err
		}
		if _, err := io.ReadFull(c, back); err != nil {
			c.Close()
			return 0, err
		}
		n++
	}
	elapsed := time.Since(start)
	c.Close()
	if err := <-echoed; err != nil {
		return 0, err
	}
	return math.Round(float64(elapsed.Nanoseconds())/float64(n)/10) / 100, nil
}

// loadConn is one keep-alive HTTP/1.1 connection, for the requests a run
// sends before its load (and the load generator's tests).
type loadConn struct {
	c   net.Conn
	buf []byte // what was read and not parsed yet
}

func dialLoad(baseURL string) (*loadConn, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, err
	}
	c, err := net.DialTimeout("tcp", u.Host, 10*time.Second)
	if err != nil {
		return nil, err
	}
	return &loadConn{c: c, buf: make([]byte, 0, 4<<10)}, nil
}

// do writes the raw request req, reads its response (within 30 s) and
// returns its status. An error means the connection cannot be used again.
func (l *loadConn) do(req []byte) (int, error) {
	if err := l.c.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		return 0, err
	}
	if _, err := l.c.Write(req); err != nil {
		return 0, err
	}
	for {
		status, n, closing, err := parseResponse(l.buf)
		switch {
		case err != nil:
			return status, err
		case n > 0:
			l.buf = l.buf[:copy(l.buf, l.buf[n:])]
			if closing {
				return status, errConnClose
			}
			return status, nil
		}
		l.buf = slices.Grow(l.buf, 4<<10)
		m, err := l.c.Read(l.buf[len(l.buf):cap(l.buf)])
		l.buf = l.buf[:len(l.buf)+m]
		if err != nil && m == 0 {
			return 0, err
		}
	}
}

func (l *loadConn) close() { _ = l.c.Close() }

var errConnClose = errors.New("the server closes the connection")

// parseResponse parses one HTTP/1.1 response at the start of b: its
// status, its headers (only Content-Length, Connection and
// Transfer-Encoding matter here) and its body, which is skipped. It returns
// the status and the bytes the response took (0 when b does not hold all of
// it yet), closing when the server closes the connection after it, and an
// error when the response is malformed, interim (1xx: the load sends no
// Expect header, so none should come, and reading on would pair every
// later request with the previous one's response) or has no length (the
// collector always sends Content-Length for its small bodies).
func parseResponse(b []byte) (status, n int, closing bool, err error) {
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		if len(b) > 64<<10 {
			return 0, 0, false, errors.New("a response header larger than 64 KiB")
		}
		return 0, 0, false, nil
	}
	head := b[:end+2]
	line, rest, _ := bytes.Cut(head, []byte("\r\n"))
	// "HTTP/1.1 202 Accepted"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) || (len(line) > 12 && line[12] != ' ') {
		return 0, 0, false, fmt.Errorf("malformed status line %q", line)
	}
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return 0, 0, false, fmt.Errorf("malformed status line %q", line)
		}
		status = status*10 + int(c-'0')
	}
	if status < 200 {
		return status, 0, false, fmt.Errorf("interim response %q", line)
	}
	length := -1
	if status == http.StatusNoContent || status == http.StatusNotModified {
		length = 0
	}
	for len(rest) > 0 {
		line, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return status, 0, false, fmt.Errorf("malformed header line %q", line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			l, err := strconv.Atoi(string(value))
			if err != nil || l < 0 {
				return status, 0, false, fmt.Errorf("malformed Content-Length %q", value)
			}
			length = l
		case bytes.EqualFold(name, []byte("Connection")):
			closing = bytes.EqualFold(value, []byte("close"))
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return status, 0, false, fmt.Errorf("transfer encoding %q: the load generator reads only responses with a Content-Length", value)
		}
	}
	if length < 0 {
		return status, 0, false, errors.New("a response without Content-Length")
	}
	if total := end + 4 + length; len(b) >= total {
		return status, total, closing, nil
	}
	return status, 0, false, nil
}

// TestLoadGeneratorSpeaksHTTP checks the load generator against Go's HTTP
// server: the requests it writes arrive whole (method, path, headers,
// body), and it reads the server's answers (with a body, without one, one
// that closes the connection) back to back on one connection.
func TestLoadGeneratorSpeaksHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		switch {
		case err != nil || r.Method != http.MethodPost || r.URL.Path != "/v1/answers" || r.URL.RawQuery != "x=1":
			w.WriteHeader(http.StatusBadRequest)
		case r.Header.Get("Origin") != benchOrigin || r.Header.Get("X-Signature") != "sig-"+string(body):
			w.WriteHeader(http.StatusForbidden)
		case string(body) == "empty":
			w.WriteHeader(http.StatusNoContent)
		case string(body) == "close":
			w.Header().Set("Connection", "close")
			w.WriteHeader(http.StatusAccepted)
		case string(body) == "early":
			w.WriteHeader(http.StatusEarlyHints)
			w.WriteHeader(http.StatusAccepted)
		default:
			w.WriteHeader(http.StatusAccepted)
			_, _ = io.WriteString(w, `{"accepted":1}`+"\n")
		}
	}))
	defer srv.Close()
	tmpl, err := newRequestTemplate(srv.URL+"/v1/answers?x=1", http.Header{"Origin": {benchOrigin}})
	must(t, err)
	conn, err := dialLoad(srv.URL)
	must(t, err)
	defer conn.close()
	for _, c := range []struct {
		body, sig string
		status    int
		err       bool
	}{
		{body: "one", sig: "sig-one", status: http.StatusAccepted},
		{body: "two", sig: "forged", status: http.StatusForbidden},
		{body: "empty", sig: "sig-empty", status: http.StatusNoContent},
		{body: "three", sig: "sig-three", status: http.StatusAccepted},
		{body: "close", sig: "sig-close", status: http.StatusAccepted, err: true},
	} {
		status, err := conn.do(tmpl.append(nil, "X-Signature", c.sig, []byte(c.body)))
		if status != c.status || (err != nil) != c.err {
			t.Errorf("%s: status %d, error %v; want %d, error %v", c.body, status, err, c.status, c.err)
		}
	}

	// An interim response is an error, not the request's status.
	early, err := dialLoad(srv.URL)
	must(t, err)
	defer early.close()
	if status, err := early.do(tmpl.append(nil, "X-Signature", "sig-early", []byte("early"))); err == nil {
		t.Errorf("a 103 before the 202 was read as status %d without an error", status)
	}

	// Both load generators, on many connections at once: every request
	// arrives whole and once, each status is counted as what it was, a
	// request larger than the socket's buffer goes out in parts, a 202
	// that closes its connection counts and the connection is dialled
	// again, a connection the server drops counts as rejected.
	for _, name := range []string{"epoll", "goroutines"} {
		t.Run(name, func(t *testing.T) {
			driveWith := func(base string, inFlight int, next requestFunc) loadResult {
				if name == "goroutines" {
					return driveGoroutines([]string{base}, inFlight, time.Second, next)
				}
				res, err := driveEpoll([]string{base}, inFlight, time.Second, next)
				must(t, err)
				return res
			}
			var mu sync.Mutex
			seen := map[string]int{}
			count := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, err := io.ReadAll(r.Body)
				if err != nil || r.Header.Get("X-Signature") != "sig-"+strconv.Itoa(len(body)) {
					w.WriteHeader(http.StatusBadRequest)
					return
				}
				mu.Lock()
				seen[string(body)]++
				mu.Unlock()
				switch {
				case bytes.HasPrefix(body, []byte("forged")):
					w.WriteHeader(http.StatusForbidden)
				case bytes.HasPrefix(body, []byte("drop")):
					c, _, err := w.(http.Hijacker).Hijack()
					if err == nil {
						c.Close()
					}
				case bytes.HasPrefix(body, []byte("close")):
					w.Header().Set("Connection", "close")
					w.WriteHeader(http.StatusAccepted)
				default:
					w.WriteHeader(http.StatusAccepted)
					_, _ = io.WriteString(w, `{"accepted":1}`+"\n")
				}
			}))
			defer count.Close()
			tmpl, err := newRequestTemplate(count.URL+"/v1/answers", nil)
			must(t, err)
			big := bytes.Repeat([]byte("b"), 4<<20) // more than a socket buffer: written in parts
			// Requests 3 to 6 are among the 16 connections' first: every
			// run has each kind, however slow the machine.
			load := driveWith(count.URL, 16, func(seq int64, buf []byte) []byte {
				body := []byte("n" + strconv.FormatInt(seq, 10))
				switch seq % 10 {
				case 3:
					body = []byte("forged" + strconv.FormatInt(seq, 10))
				case 4:
					body = []byte("close" + strconv.FormatInt(seq, 10))
				case 5:
					body = []byte("drop" + strconv.FormatInt(seq, 10))
				}
				if seq == 6 {
					body = append([]byte("big"), big...)
				}
				return tmpl.append(buf, "X-Signature", "sig-"+strconv.Itoa(len(body)), body)
			})
			mu.Lock()
			defer mu.Unlock()
			var accepted, forged, dropped int64
			for body, n := range seen {
				if n != 1 {
					t.Errorf("request %.20s arrived %d times", body, n)
				}
				switch {
				case strings.HasPrefix(body, "forged"):
					forged++
				case strings.HasPrefix(body, "drop"):
					dropped++
				default:
					accepted++
				}
			}
			t.Logf("%d requests: %d accepted, rejected %v", len(seen), load.accepted, load.rejectedBy)
			if accepted == 0 || forged == 0 || dropped == 0 || load.accepted != accepted || load.rejectedBy["403"] != forged || load.rejectedBy["connection"] != dropped ||
				load.rejected != forged+dropped || int64(len(load.latencies)) != load.accepted {
				t.Errorf("drive counted %d accepted, rejected %v (%d); the server answered %d with 202, %d with 403, dropped %d",
					load.accepted, load.rejectedBy, load.rejected, accepted, forged, dropped)
			}

			// Nobody listens: each connection's dial fails once, and it stops.
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			must(t, err)
			gone := "http://" + ln.Addr().String()
			ln.Close()
			load = driveWith(gone, 4, func(_ int64, buf []byte) []byte { return tmpl.append(buf, "", "", []byte("x")) })
			if load.accepted != 0 || load.rejectedBy["dial"] != 4 || load.rejected != 4 {
				t.Errorf("drive against a closed port: %d accepted, rejected %v; want 4 failed dials", load.accepted, load.rejectedBy)
			}
		})
	}
}

func TestAppendAnswer(t *testing.T) {
	for _, seq := range []int64{0, 1, 42, 123456789012345, 1234567890123456, -1} {
		got := string(appendAnswer([]byte("x"), answerPrefix("a.b", 1), seq))
		want := "x" + `{"assignment":"a.b","respondent":"r1-` + fmt.Sprintf("%015d", seq) + `","score":4}`
		if seq < 0 {
			want = "x" + `{"assignment":"a.b","respondent":"r1-` + "-" + fmt.Sprintf("%015d", -seq) + `","score":4}`
		}
		if got != want {
			t.Errorf("appendAnswer(%d) = %s, want %s", seq, got, want)
		}
	}
}

func TestBusyTime(t *testing.T) {
	// user 100, nice 2, system 30, idle 900, iowait 50, irq 1, softirq 4, steal 3; guest fields follow.
	got, err := busyTime("cpu  100 2 30 900 50 1 4 3 7 0\ncpu0 50 1 15 450 25 0 2 1 0 0\n")
	if err != nil || got != 1400*time.Millisecond {
		t.Errorf("busyTime = %v, %v; want 1.4s (140 ticks)", got, err)
	}
	for _, bad := range []string{"", "intr 1 2 3", "cpu 1 2 3", "cpu 1 2 x 4 5 6 7 8"} {
		if _, err := busyTime(bad); err == nil {
			t.Errorf("busyTime(%q) gave no error", bad)
		}
	}
}

func TestHostRoundTripMicros(t *testing.T) {
	us, err := hostRoundTripMicros()
	if err != nil || !(us > 0) || math.IsInf(us, 0) {
		t.Fatalf("hostRoundTripMicros = %v, %v; want a positive time", us, err)
	}
	t.Logf("a loopback round trip takes %.2f µs here now", us)
}
