package utils

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// Ports for test servers.
//
// A port found by listening on 127.0.0.1:0 and closing the listener comes
// from the kernel's ephemeral range, the same range the kernel hands to
// outgoing connections. Until the server that was meant to get it binds, any
// client of the test process (a feeder reconnecting to a collector, a client
// of the API server) can be given that port as its local end, and the server
// then fails with "address already in use"; a client can even connect to
// itself. FreePort therefore chooses ports outside the ephemeral range
// (/proc/sys/net/ipv4/ip_local_port_range), where the kernel never picks a
// local port by itself, and reserves each with a lock file, so that test
// processes running at the same time (go test runs packages in parallel)
// never choose the same one.

// ephemeralRangeFile is where Linux keeps the ephemeral port range.
const ephemeralRangeFile = "/proc/sys/net/ipv4/ip_local_port_range"

// lowestPort is the lowest port FreePort chooses: well above the ports
// services usually run on.
const lowestPort = 10000

var ports = struct {
	sync.Mutex
	// held keeps the lock file of each port this process reserved open
	// until the process ends (closing it would release the reservation).
	held map[int]*os.File
}{held: map[int]*os.File{}}

// EphemeralRange returns the kernel's ephemeral port range, or Linux's
// default (32768-60999) when it cannot be read.
func EphemeralRange() (lo, hi int) {
	lo, hi = 32768, 60999
	b, err := os.ReadFile(ephemeralRangeFile)
	if err != nil {
		return lo, hi
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return lo, hi
	}
	l, err1 := strconv.Atoi(f[0])
	h, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil || l > h {
		return lo, hi
	}
	return l, h
}

// candidatePorts lists the ports outside the ephemeral range, from
// lowestPort to 65535.
func candidatePorts() []int {
	lo, hi := EphemeralRange()
	var out []int
	for p := lowestPort; p <= 65535; p++ {
		if p < lo || p > hi {
			out = append(out, p)
		}
	}
	return out
}

// FreePort returns a loopback TCP port outside the ephemeral range that
// nothing listens on and that no other test process has reserved. The
// reservation lasts until the process ends, so the port can be bound again
// after a server restart.
func FreePort() (int, error) {
	candidates := candidatePorts()
	if len(candidates) == 0 {
		lo, hi := EphemeralRange()
		return 0, fmt.Errorf("no port outside the ephemeral range %d-%d (%s) to choose from", lo, hi, ephemeralRangeFile)
	}
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("rapport-test-ports-%d", os.Getuid()))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, fmt.Errorf("port reservations: %w", err)
	}
	ports.Lock()
	defer ports.Unlock()
	start := rand.IntN(len(candidates))
	for i := range candidates {
		port := candidates[(start+i)%len(candidates)]
		if _, mine := ports.held[port]; mine {
			continue
		}
		f, err := reserve(filepath.Join(dir, strconv.Itoa(port)))
		if errors.Is(err, errReserved) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("reserve port %d: %w", port, err)
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			_ = f.Close() // someone outside the tests listens there
			continue
		}
		_ = l.Close()
		ports.held[port] = f
		return port, nil
	}
	return 0, errors.New("every port outside the ephemeral range is taken or reserved")
}

// FreeAddr returns "127.0.0.1:<port>" with a port from FreePort.
func FreeAddr() (string, error) {
	p, err := FreePort()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), nil
}

// ClosedAddr returns a loopback address nothing listens on, for tests of
// unreachable servers: unlike a port the kernel handed out and took back, no
// outgoing connection can be using it.
func ClosedAddr() (string, error) { return FreeAddr() }
