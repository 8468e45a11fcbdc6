//go:build bench && linux

package cluster

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"syscall"
	"time"
)

// epollConn is one connection of driveEpoll.
type epollConn struct {
	fd         int
	slot, gen  int32 // the connection's place in driver.conns, and its dial there
	addr       *syscall.SockaddrInet4
	connecting bool   // the non-blocking connect has not completed
	writing    bool   // waiting for room to write the rest of out
	sent       bool   // a request is on the connection, its response not read
	out        []byte // the request's bytes not written yet
	req        []byte // the request's buffer, reused
	in         []byte // bytes read and not parsed yet
	start      time.Time
}

// epollDriver is the state of one driveEpoll.
type epollDriver struct {
	ep       int
	conns    []*epollConn // by slot; nil when the slot's connection stopped
	open     int
	seq      int64
	deadline time.Time
	next     requestFunc
	res      loadResult
}

// driveEpoll is drive's load generator: one thread serves all connections
// over one epoll instance, as wrk does. Each request costs one write and,
// as its response arrives, one read; the thread waits in epoll_wait, which
// returns many connections' events at once. Requests still unanswered 30 s
// after duration count as rejected ("timeout").
func driveEpoll(baseURLs []string, inFlight int, duration time.Duration, next requestFunc) (loadResult, error) {
	d := &epollDriver{next: next, conns: make([]*epollConn, inFlight),
		res: loadResult{rejectedBy: map[string]int64{}, latencies: make([]float64, 0, 1<<20)}}
	addrs := make([]*syscall.SockaddrInet4, len(baseURLs))
	for i, base := range baseURLs {
		a, err := sockaddr(base)
		if err != nil {
			return d.res, err
		}
		addrs[i] = a
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return d.res, fmt.Errorf("epoll_create1: %w", err)
	}
	defer syscall.Close(ep)
	d.ep = ep
	d.deadline = time.Now().Add(duration)
	stopBy := d.deadline.Add(30 * time.Second)
	for i := range inFlight {
		d.dial(int32(i), 0, addrs[i%len(addrs)])
	}
	events := make([]syscall.EpollEvent, 256)
	for d.open > 0 {
		if time.Now().After(stopBy) {
			for _, c := range d.conns {
				if c != nil {
					if c.sent {
						d.reject("timeout")
					}
					d.close(c)
				}
			}
			break
		}
		n, err := syscall.EpollWait(ep, events, 100)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return d.res, fmt.Errorf("epoll_wait: %w", err)
		}
		for _, ev := range events[:n] {
			c := d.conns[ev.Fd]
			if c == nil || c.gen != ev.Pad {
				continue // the connection this event was for is closed
			}
			if c.connecting {
				d.connected(c, ev.Events)
				continue
			}
			if ev.Events&syscall.EPOLLOUT != 0 && c.writing {
				if err := d.flush(c); err != nil {
					d.broken(c)
					continue
				}
			}
			if ev.Events&(syscall.EPOLLIN|syscall.EPOLLERR|syscall.EPOLLHUP) != 0 {
				d.readable(c)
			}
		}
	}
	sort.Float64s(d.res.latencies)
	d.res.accepted = int64(len(d.res.latencies))
	return d.res, nil
}

// sockaddr is the IPv4 address of a base URL's host.
func sockaddr(base string) (*syscall.SockaddrInet4, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	a, err := net.ResolveTCPAddr("tcp4", u.Host)
	if err != nil {
		return nil, err
	}
	sa := &syscall.SockaddrInet4{Port: a.Port}
	copy(sa.Addr[:], a.IP.To4())
	return sa, nil
}

func (d *epollDriver) reject(why string) {
	d.res.rejectedBy[why]++
	d.res.rejected++
}

// dial opens slot's connection number gen to addr without waiting for it;
// a dial that fails stops the slot.
func (d *epollDriver) dial(slot, gen int32, addr *syscall.SockaddrInet4) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		d.reject("dial")
		return
	}
	// As Go's net package does: a request goes out at once, whole.
	_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
	err = syscall.Connect(fd, addr)
	if err != nil && !errors.Is(err, syscall.EINPROGRESS) {
		syscall.Close(fd)
		d.reject("dial")
		return
	}
	c := &epollConn{fd: fd, slot: slot, gen: gen, addr: addr, connecting: err != nil, in: make([]byte, 0, 4<<10)}
	events := uint32(syscall.EPOLLIN)
	if c.connecting {
		events = syscall.EPOLLOUT
	}
	if err := syscall.EpollCtl(d.ep, syscall.EPOLL_CTL_ADD, fd, &syscall.EpollEvent{Events: events, Fd: slot, Pad: gen}); err != nil {
		syscall.Close(fd)
		d.reject("dial")
		return
	}
	d.conns[slot] = c
	d.open++
	if !c.connecting {
		d.send(c)
	}
}

// connected finishes a dial: the connection sends its first request, or
// the slot stops.
func (d *epollDriver) connected(c *epollConn, events uint32) {
	soErr, err := syscall.GetsockoptInt(c.fd, syscall.SOL_SOCKET, syscall.SO_ERROR)
	if err != nil || soErr != 0 || events&syscall.EPOLLOUT == 0 {
		d.close(c)
		d.reject("dial")
		return
	}
	c.connecting = false
	if err := d.watch(c, syscall.EPOLLIN); err != nil {
		d.broken(c)
		return
	}
	d.send(c)
}

func (d *epollDriver) watch(c *epollConn, events uint32) error {
	return syscall.EpollCtl(d.ep, syscall.EPOLL_CTL_MOD, c.fd, &syscall.EpollEvent{Events: events, Fd: c.slot, Pad: c.gen})
}

func (d *epollDriver) close(c *epollConn) {
	_ = syscall.EpollCtl(d.ep, syscall.EPOLL_CTL_DEL, c.fd, nil)
	syscall.Close(c.fd)
	d.conns[c.slot] = nil
	d.open--
}

// send writes the connection's next request, or closes it once the run's
// time is up.
func (d *epollDriver) send(c *epollConn) {
	if !time.Now().Before(d.deadline) {
		d.close(c)
		return
	}
	d.seq++
	c.req = d.next(d.seq, c.req[:0])
	c.out, c.sent, c.start = c.req, true, time.Now()
	if err := d.flush(c); err != nil {
		d.broken(c)
	}
}

// flush writes what is left of the request; when the socket is full it
// waits for room (EPOLLOUT) and goes on from there.
func (d *epollDriver) flush(c *epollConn) error {
	for len(c.out) > 0 {
		n, err := syscall.Write(c.fd, c.out)
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EAGAIN):
			if !c.writing {
				c.writing = true
				return d.watch(c, syscall.EPOLLIN|syscall.EPOLLOUT)
			}
			return nil
		case err != nil:
			return err
		}
		c.out = c.out[n:]
	}
	if c.writing {
		c.writing = false
		return d.watch(c, syscall.EPOLLIN)
	}
	return nil
}

// broken counts the request on a connection that failed and dials again
// while the run lasts.
func (d *epollDriver) broken(c *epollConn) {
	if c.sent {
		d.reject("connection")
	}
	d.redial(c)
}

func (d *epollDriver) redial(c *epollConn) {
	d.close(c)
	if time.Now().Before(d.deadline) {
		d.dial(c.slot, c.gen+1, c.addr)
	}
}

// readable reads what arrived, once: epoll reports the connection again
// while more is there. A complete response is counted, and the next
// request sent.
func (d *epollDriver) readable(c *epollConn) {
	c.in = slices.Grow(c.in, 4<<10)
	n, err := syscall.Read(c.fd, c.in[len(c.in):cap(c.in)])
	switch {
	case errors.Is(err, syscall.EINTR), errors.Is(err, syscall.EAGAIN):
		return
	case err != nil || n == 0: // an error, or the server closed
		d.broken(c)
		return
	}
	c.in = c.in[:len(c.in)+n]
	status, used, closing, err := parseResponse(c.in)
	switch {
	case err != nil || (used > 0 && !c.sent):
		d.broken(c)
		return
	case used == 0:
		return // more to come
	}
	c.in = c.in[:copy(c.in, c.in[used:])]
	c.sent = false
	if status == http.StatusAccepted {
		d.res.latencies = append(d.res.latencies, float64(time.Since(c.start).Microseconds())/1000)
	} else {
		d.reject(strconv.Itoa(status))
	}
	if closing {
		d.redial(c)
		return
	}
	d.send(c)
}
