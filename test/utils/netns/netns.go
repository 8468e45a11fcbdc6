// Package netns runs a program (a test binary, the demo) again inside a
// private network namespace, so that a control plane, a Gateway API proxy and
// variant backends can talk over real sockets without anything listening
// outside, and without competing for ports with the rest of the machine.
//
// The namespace has only a loopback device, with 127.0.0.1 and the TEST-NET-1
// range 192.0.2.0/24 (RFC 5737, never routed) on it and a default route
// through it: kube-apiserver needs a default route to pick the address it
// advertises, and EndpointSlices may not name loopback addresses, so the
// backends listen on 192.0.2.x. The re-executed program is also PID 1 of a
// new PID namespace: when it ends, or is killed, the kernel kills every
// process it started (etcd, kube-apiserver, the proxy, the manager), so
// nothing is ever left behind. The namespaces need root (CAP_SYS_ADMIN);
// without root, Reexec tries an unprivileged user namespace.
package netns

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// envInside marks a process started by Reexec.
const envInside = "RAPPORT_NETNS"

// Addresses inside the namespace.
const (
	// Prefix is on the loopback device: every address in it is local.
	Prefix = "192.0.2.0/24"
	// Host is the address the proxy and the backends listen on.
	Host = "192.0.2.1"
)

// Inside reports whether this process was started by Reexec (it then runs in
// its own network namespace; call Setup first).
func Inside() bool { return os.Getenv(envInside) == "1" }

// Available reports whether this process may create the namespaces Reexec
// creates, by starting a trivial command in them; the error says why not.
func Available() error {
	cmd := exec.Command("/bin/sh", "-c", "exit 0")
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Run(); err != nil {
		return explain(err)
	}
	return nil
}

func sysProcAttr() *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNET | syscall.CLONE_NEWPID,
		// The child dies with this process (the thread that started it,
		// strictly: Reexec locks it until the child ends).
		Pdeathsig: syscall.SIGKILL,
	}
	if os.Geteuid() != 0 {
		// Unprivileged: a user namespace in which this user is root.
		attr.Cloneflags |= syscall.CLONE_NEWUSER
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}}
		attr.GidMappingsEnableSetgroups = false
	}
	return attr
}

func explain(err error) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("create a private network namespace: %w (run as root, or enable unprivileged user namespaces: sysctl kernel.unprivileged_userns_clone=1)", err)
	}
	return fmt.Errorf("create a private network namespace: %w (a container needs CAP_SYS_ADMIN, e.g. docker run --privileged)", err)
}

// Reexec runs the current executable again, with args (usually
// os.Args[1:]) and this environment plus extraEnv, as PID 1 of new network
// and PID namespaces, and returns its exit code once it ends. Stdin, stdout and stderr are shared.
// SIGINT and SIGTERM received meanwhile are passed on to it; if this process
// dies, the kernel kills it (and so everything it started).
//
// The error says why the namespaces could not be made (e.g. not root and no
// unprivileged user namespaces); nothing ran then.
func Reexec(args []string, extraEnv ...string) (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("find the running executable: %w", err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(append(os.Environ(), envInside+"=1"), extraEnv...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = sysProcAttr()

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(signals)
	if err := cmd.Start(); err != nil {
		return 0, explain(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case sig := <-signals:
			// The child (PID 1 of its namespace) ignores signals it has no
			// handler for; Go programs handle SIGINT and SIGTERM.
			_ = cmd.Process.Signal(sig)
		case err := <-done:
			var exit *exec.ExitError
			switch {
			case err == nil:
				return 0, nil
			case errors.As(err, &exit) && exit.ExitCode() >= 0:
				return exit.ExitCode(), nil
			case errors.As(err, &exit):
				if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
					fmt.Fprintf(os.Stderr, "netns: %s was killed by %s\n", exe, ws.Signal())
					return 128 + int(ws.Signal()), nil
				}
				return 1, nil
			default:
				return 1, fmt.Errorf("wait for %s: %w", exe, err)
			}
		}
	}
}

// HostPID is this process's PID as the machine outside the namespace sees
// it (the first of /proc/self/status NSpid), for `nsenter -t PID -n`.
func HostPID() int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return os.Getpid()
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f, ok := strings.CutPrefix(line, "NSpid:"); ok {
			if fields := strings.Fields(f); len(fields) > 0 {
				if pid, err := strconv.Atoi(fields[0]); err == nil {
					return pid
				}
			}
		}
	}
	return os.Getpid()
}

// Setup configures the namespace this process runs in (see Inside): brings
// the loopback device up, adds Prefix to it and a default route through it.
func Setup() error {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		return fmt.Errorf("find the loopback device: %w", err)
	}
	if err := linkUp("lo"); err != nil {
		return fmt.Errorf("bring lo up: %w", err)
	}
	_, prefix, err := net.ParseCIDR(Prefix)
	if err != nil {
		return err
	}
	ones, _ := prefix.Mask.Size()
	if err := addAddress(lo.Index, net.ParseIP(Host).To4(), ones); err != nil {
		return fmt.Errorf("add %s to lo: %w", Prefix, err)
	}
	if err := addDefaultRoute(lo.Index); err != nil {
		return fmt.Errorf("add a default route through lo: %w", err)
	}
	return nil
}

func linkUp(name string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer func() { _ = unix.Close(fd) }()
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// addAddress adds ip/prefixLen to the interface (RTM_NEWADDR).
func addAddress(index int, ip net.IP, prefixLen int) error {
	// struct ifaddrmsg: family, prefixlen, flags, scope (u8), index (u32).
	body := []byte{unix.AF_INET, byte(prefixLen), 0, unix.RT_SCOPE_UNIVERSE}
	body = binary.NativeEndian.AppendUint32(body, uint32(index))
	body = appendAttr(body, unix.IFA_LOCAL, ip)
	body = appendAttr(body, unix.IFA_ADDRESS, ip)
	return netlinkDo(unix.RTM_NEWADDR, body)
}

// addDefaultRoute adds 0.0.0.0/0 through the interface (RTM_NEWROUTE).
func addDefaultRoute(index int) error {
	// struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope,
	// type (u8), flags (u32).
	body := []byte{unix.AF_INET, 0, 0, 0, unix.RT_TABLE_MAIN, unix.RTPROT_BOOT, unix.RT_SCOPE_LINK, unix.RTN_UNICAST, 0, 0, 0, 0}
	body = appendAttr(body, unix.RTA_OIF, binary.NativeEndian.AppendUint32(nil, uint32(index)))
	return netlinkDo(unix.RTM_NEWROUTE, body)
}

// appendAttr appends a route attribute (struct rtattr + data, 4-byte aligned).
func appendAttr(b []byte, typ uint16, data []byte) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(unix.SizeofRtAttr+len(data)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, data...)
	for len(b)%unix.NLMSG_ALIGNTO != 0 {
		b = append(b, 0)
	}
	return b
}

// netlinkDo sends one rtnetlink request that creates something and waits
// for its acknowledgement.
func netlinkDo(typ uint16, body []byte) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer func() { _ = unix.Close(fd) }()
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	const seq = 1
	msg := binary.NativeEndian.AppendUint32(nil, uint32(unix.NLMSG_HDRLEN+len(body)))
	msg = binary.NativeEndian.AppendUint16(msg, typ)
	msg = binary.NativeEndian.AppendUint16(msg, unix.NLM_F_REQUEST|unix.NLM_F_ACK|unix.NLM_F_CREATE|unix.NLM_F_EXCL)
	msg = binary.NativeEndian.AppendUint32(msg, seq)
	msg = binary.NativeEndian.AppendUint32(msg, 0)
	msg = append(msg, body...)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return err
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if m.Header.Seq != seq || m.Header.Type != unix.NLMSG_ERROR {
				continue
			}
			if len(m.Data) < 4 {
				return errors.New("short netlink acknowledgement")
			}
			if code := int32(binary.NativeEndian.Uint32(m.Data[:4])); code != 0 {
				return syscall.Errno(-code)
			}
			return nil
		}
	}
}
