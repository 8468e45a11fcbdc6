package netns

import (
	"net"
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	if Inside() {
		if err := Setup(); err != nil {
			os.Stderr.WriteString("netns setup: " + err.Error() + "\n")
			os.Exit(3)
		}
	}
	os.Exit(m.Run())
}

// TestNamespace runs itself again in a private namespace and checks there
// what the e2e suite relies on.
func TestNamespace(t *testing.T) {
	if !Inside() {
		available := Available()
		code, err := Reexec([]string{"-test.run=^TestNamespace$", "-test.v"})
		if err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatal(err)
			}
			t.Skip(err)
		}
		if available != nil {
			t.Errorf("Available() = %v, yet Reexec worked", available)
		}
		if code != 0 {
			t.Fatalf("the test inside the namespace failed with exit code %d (its output is above)", code)
		}
		return
	}
	if os.Getpid() != 1 {
		t.Errorf("pid %d inside the namespace; want 1 (a new PID namespace)", os.Getpid())
	}
	if HostPID() == 1 {
		t.Errorf("HostPID() = 1 inside the namespace; want the PID the machine sees")
	}
	// Every address of Prefix is local: a backend can listen on any of them.
	for _, addr := range []string{Host + ":8000", "192.0.2.77:8000", "127.0.0.1:8000"} {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("listen on %s: %v", addr, err)
		}
		go func() {
			c, err := l.Accept()
			if err == nil {
				c.Write([]byte("ok"))
				c.Close()
			}
		}()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial %s: %v", addr, err)
		}
		buf := make([]byte, 2)
		if _, err := c.Read(buf); err != nil || string(buf) != "ok" {
			t.Errorf("read from %s: %q, %v", addr, buf, err)
		}
		c.Close()
		l.Close()
	}
	// A default route exists (kube-apiserver picks its address from it), and
	// leads nowhere but the namespace's loopback device.
	c, err := net.Dial("udp", "203.0.113.1:9")
	if err != nil {
		t.Fatalf("no default route: %v", err)
	}
	c.Close()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	if len(ifs) != 1 || ifs[0].Name != "lo" {
		t.Errorf("interfaces %v; want only lo", ifs)
	}
}
