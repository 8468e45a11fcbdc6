package fastserve

import (
	"net"
	"sync"
	"time"
)

// DeadlineSlack is how much later than asked a deadline of a connection
// from LazyDeadlines may expire.
const DeadlineSlack = time.Second

// LazyDeadlines returns ln with connections that give a deadline to the
// descriptor only when a read or write needs it.
//
// fasthttp sets the read deadline three times per request (the idle wait,
// the headers, the body) and the write deadline once; each is a change to
// the runtime's timers, together about 2.7% of the manager's CPU per webhook
// answer (docs/benchmarks.md), and most of them bound no read: a small
// request arrives whole in the read that waited for it. A connection from
// LazyDeadlines records the deadline it is given, and before each Read or
// Write makes the descriptor's cover it: expiring no earlier than asked
// and at most DeadlineSlack later. Requests that follow each other within
// the slack on a connection then change the descriptor's deadline about
// once per slack, not four times per request. (The tests give a
// connection a shorter slack through newLazyConn.)
//
// Semantics, against net.Conn's:
//   - a deadline expires up to the slack late (never early);
//   - a deadline closer than twice the slack is applied at once, so one set to
//     interrupt a Read or Write blocked in another goroutine (a deadline in
//     the past, or a short linger) still does;
//   - a farther deadline, or none, set while a Read or Write is blocked in
//     another goroutine applies from that goroutine's next call.
//
// fasthttp's server serves each connection from one goroutine, so the last
// point does not arise there.
func LazyDeadlines(ln net.Listener) net.Listener {
	return lazyListener{ln}
}

type lazyListener struct{ net.Listener }

func (l lazyListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newLazyConn(c, DeadlineSlack), nil
}

// lazyConn is a connection from LazyDeadlines.
type lazyConn struct {
	net.Conn
	slack time.Duration

	mu          sync.Mutex
	read, write deadline
}

func newLazyConn(c net.Conn, slack time.Duration) *lazyConn {
	return &lazyConn{Conn: c, slack: slack}
}

// deadline is one direction's deadline: the one asked for and the one the
// descriptor has (zero: none).
type deadline struct{ want, set time.Time }

// covered tells whether the descriptor's deadline serves for the one asked
// for: none when none is asked for, else no earlier than it and at most
// slack later.
func (d *deadline) covered(slack time.Duration) bool {
	if d.want.IsZero() {
		return d.set.IsZero()
	}
	return !d.set.IsZero() && !d.set.Before(d.want) && !d.set.After(d.want.Add(slack))
}

func (c *lazyConn) Read(p []byte) (int, error) {
	if err := c.ensure(&c.read, c.Conn.SetReadDeadline); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *lazyConn) Write(p []byte) (int, error) {
	if err := c.ensure(&c.write, c.Conn.SetWriteDeadline); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

func (c *lazyConn) SetReadDeadline(t time.Time) error {
	return c.record(&c.read, t, c.Conn.SetReadDeadline)
}

func (c *lazyConn) SetWriteDeadline(t time.Time) error {
	return c.record(&c.write, t, c.Conn.SetWriteDeadline)
}

func (c *lazyConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// CloseWrite shuts the sending side, when the connection has one (TCP
// does; the linger after a refused body uses it).
func (c *lazyConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// record takes t as d's deadline: at once when it is near (less than twice
// slack away, or past), else at the next Read or Write (ensure).
func (c *lazyConn) record(d *deadline, t time.Time, apply func(time.Time) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	d.want = t
	if t.IsZero() || time.Until(t) >= 2*c.slack {
		return nil
	}
	if err := apply(t); err != nil {
		return err
	}
	d.set = t
	return nil
}

// ensure gives the descriptor a deadline that covers d's: the one asked
// for plus slack, so that the next ones (asked for by the requests that
// follow within slack) are covered too.
func (c *lazyConn) ensure(d *deadline, apply func(time.Time) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d.covered(c.slack) {
		return nil
	}
	t := d.want
	if !t.IsZero() {
		t = t.Add(c.slack)
	}
	if err := apply(t); err != nil {
		return err
	}
	d.set = t
	return nil
}
