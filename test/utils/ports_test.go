package utils

import (
	"errors"
	"net"
	"path/filepath"
	"strconv"
	"testing"
)

// TestFreeAddrAvoidsTheEphemeralRange: the ports tests hand to servers are
// never ones the kernel may give an outgoing connection in the meantime
// (the cause of "bind: address already in use" when the reliability suite
// restarted a manager while its feeder reconnected).
func TestFreeAddrAvoidsTheEphemeralRange(t *testing.T) {
	lo, hi := EphemeralRange()
	seen := map[string]bool{}
	for range 50 {
		addr, err := FreeAddr()
		if err != nil {
			t.Fatal(err)
		}
		host, p, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatal(err)
		}
		port, _ := strconv.Atoi(p)
		if host != "127.0.0.1" {
			t.Errorf("FreeAddr() = %s, want a loopback address", addr)
		}
		if port >= lo && port <= hi {
			t.Errorf("FreeAddr() = %s: port %d is in the ephemeral range %d-%d", addr, port, lo, hi)
		}
		if seen[addr] {
			t.Errorf("FreeAddr() returned %s twice", addr)
		}
		seen[addr] = true
		// The port is free: a server can bind it.
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("listen on %s: %v", addr, err)
		}
		_ = l.Close()
	}
}

// TestReservationsKeepProcessesApart: a port whose lock file another process
// holds is not reserved again until that process lets go.
func TestReservationsKeepProcessesApart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "12345")
	first, err := reserve(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reserve(path); !errors.Is(err, errReserved) {
		t.Fatalf("second reservation: %v, want errReserved", err)
	}
	_ = first.Close()
	again, err := reserve(path)
	if err != nil {
		t.Fatalf("reservation after release: %v", err)
	}
	_ = again.Close()
}
