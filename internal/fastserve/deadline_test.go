package fastserve

import (
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// countingConn counts the deadlines given to the descriptor.
type countingConn struct {
	net.Conn
	reads, writes atomic.Int32
}

func (c *countingConn) SetReadDeadline(t time.Time) error {
	c.reads.Add(1)
	return c.Conn.SetReadDeadline(t)
}

func (c *countingConn) SetWriteDeadline(t time.Time) error {
	c.writes.Add(1)
	return c.Conn.SetWriteDeadline(t)
}

// CloseWrite passes the half-close on, as *net.TCPConn's.
func (c *countingConn) CloseWrite() error {
	return c.Conn.(*net.TCPConn).CloseWrite()
}

// tcpPair returns the two ends of a loopback TCP connection; the server's
// is wrapped as LazyDeadlines wraps it, with the given slack.
func tcpPair(t *testing.T, slack time.Duration) (*lazyConn, *countingConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	inner := &countingConn{Conn: server}
	lazy := newLazyConn(inner, slack)
	t.Cleanup(func() { client.Close(); server.Close() })
	return lazy, inner, client
}

// TestLazyDeadlinesPerRequest plays fasthttp's deadlines for 200 requests
// that each arrive whole in one read, 1 ms apart: the idle wait, the
// headers, the body, the response. The descriptor's deadlines change about
// once per slack, not four times per request.
func TestLazyDeadlinesPerRequest(t *testing.T) {
	const slack = 100 * time.Millisecond
	c, inner, client := tcpPair(t, slack)
	buf := make([]byte, 64)
	start := time.Now()
	for i := range 200 {
		now := time.Now()
		must(t, c.SetReadDeadline(now.Add(10*slack))) // idle
		if _, err := client.Write([]byte("request")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf[:7]); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		must(t, c.SetReadDeadline(now.Add(5*slack)))  // headers
		must(t, c.SetReadDeadline(now.Add(30*slack))) // body
		must(t, c.SetWriteDeadline(now.Add(30*slack)))
		if _, err := c.Write([]byte("answer")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(client, buf[:6]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond) // the pace of the requests is the test's subject
	}
	elapsed := time.Since(start)
	// Once at the first read and write, then once per slack at most.
	most := int32(elapsed/slack) + 2
	t.Logf("200 requests in %s: %d read and %d write deadlines given to the descriptor (at most %d each)", elapsed, inner.reads.Load(), inner.writes.Load(), most)
	if r, w := inner.reads.Load(), inner.writes.Load(); r > most || w > most {
		t.Fatalf("the descriptor's deadlines changed %d (read) and %d (write) times in %s, more than once per slack of %s", r, w, elapsed, slack)
	}
}

// TestLazyDeadlineExpires: a read waiting under a deadline set lazily
// ends with a timeout no earlier than asked, and within slack after.
func TestLazyDeadlineExpires(t *testing.T) {
	const slack = 200 * time.Millisecond
	c, _, _ := tcpPair(t, slack)
	for _, after := range []time.Duration{3 * slack, 5 * slack} {
		want := time.Now().Add(after)
		must(t, c.SetReadDeadline(want))
		_, err := c.Read(make([]byte, 1))
		ended := time.Now()
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("a read past its deadline returned %v, want a timeout", err)
		}
		if ended.Before(want) {
			t.Fatalf("the read timed out %s before its deadline", want.Sub(ended))
		}
		// The upper bound leaves a loaded machine's scheduling its time.
		if late := ended.Sub(want); late > slack+2*time.Second {
			t.Fatalf("the read timed out %s after its deadline; at most the slack (%s) is allowed", late, slack)
		}
		t.Logf("deadline in %s: the read timed out %s after it (slack %s)", after, ended.Sub(want), slack)
	}
}

// TestLazyDeadlineNearIsImmediate: a deadline less than twice slack away
// interrupts a read blocked in another goroutine, as net.Conn's does.
func TestLazyDeadlineNearIsImmediate(t *testing.T) {
	const slack = time.Hour // nothing is left to the next read
	c, _, _ := tcpPair(t, slack)
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		done <- err
	}()
	must(t, c.SetReadDeadline(time.Now()))
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("the interrupted read returned %v, want a timeout", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a deadline in the past did not interrupt a blocked read")
	}
}

// TestLazyDeadlineCleared: after a deadline expired and is cleared (zero),
// a read waits for its data instead of timing out.
func TestLazyDeadlineCleared(t *testing.T) {
	const slack = 50 * time.Millisecond
	c, _, client := tcpPair(t, slack)
	must(t, c.SetReadDeadline(time.Now().Add(3*slack)))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("first read: %v, want a timeout", err)
	}
	must(t, c.SetReadDeadline(time.Time{}))
	if _, err := client.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 1)); err != nil {
		t.Fatalf("a read without a deadline, after one expired, failed: %v", err)
	}
}

// TestLazyDeadlineWrite: a write that cannot complete times out under a
// deadline set lazily.
func TestLazyDeadlineWrite(t *testing.T) {
	const slack = 100 * time.Millisecond
	c, _, _ := tcpPair(t, slack)
	must(t, c.SetWriteDeadline(time.Now().Add(3*slack)))
	chunk := make([]byte, 1<<20)
	for range 1 << 10 { // the client never reads: the buffers fill
		if _, err := c.Write(chunk); err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("the write returned %v, want a timeout", err)
			}
			return
		}
	}
	t.Fatal("1 GiB was written to a client that reads nothing")
}

func TestLazyConnCloseWrite(t *testing.T) {
	c, _, client := tcpPair(t, time.Second)
	must(t, c.CloseWrite())
	must(t, client.SetReadDeadline(time.Now().Add(30*time.Second)))
	if n, err := client.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("after CloseWrite the client read %d bytes and %v, want EOF", n, err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
