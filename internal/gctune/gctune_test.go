package gctune

import (
	"errors"
	"math"
	"runtime/debug"
	"strings"
	"testing"
	"testing/fstest"
)

func TestDecide(t *testing.T) {
	const mib = int64(1) << 20
	for _, c := range []struct {
		name           string
		env            map[string]string
		limit          int64
		limitErr       error // what reading the container's limit fails with
		gcPercent      int
		memoryLimit    int64
		reasonContains []string
	}{
		{name: "defaults in a container", limit: 512 * mib, gcPercent: 400, memoryLimit: 483183820, // 512 MiB × 0.9, rounded down
			reasonContains: []string{"GOGC=400 (Rapport's default", "memory limit 460 MiB, 90% of the container's 512 MiB"}},
		{name: "no container limit", gcPercent: 400, reasonContains: []string{"no memory limit: none found"}},
		{name: "GOGC from the environment", env: map[string]string{"GOGC": "100"}, limit: 512 * mib, memoryLimit: 483183820,
			reasonContains: []string{"GOGC=100 from the environment"}},
		{name: "GOGC=off is left alone", env: map[string]string{"GOGC": "off"}, gcPercent: 0, reasonContains: []string{"GOGC=off from the environment"}},
		{name: "GOMEMLIMIT from the environment", env: map[string]string{"GOMEMLIMIT": "300MiB"}, limit: 512 * mib, gcPercent: 400,
			reasonContains: []string{"GOMEMLIMIT=300MiB from the environment"}},
		{name: "GOMEMLIMIT=off is left alone", env: map[string]string{"GOMEMLIMIT": "off"}, limit: 512 * mib, gcPercent: 400,
			reasonContains: []string{"GOMEMLIMIT=off from the environment"}},
		{name: "both from the environment", env: map[string]string{"GOGC": "200", "GOMEMLIMIT": "1GiB"}, limit: 512 * mib},
		{name: "the container's limit cannot be read", limitErr: errors.New("permission denied"), gcPercent: 400,
			reasonContains: []string{"no memory limit: the container's could not be read"}},
		{name: "GOMEMLIMIT set: the container's limit is not read", env: map[string]string{"GOMEMLIMIT": "300MiB"}, limitErr: errors.New("permission denied"),
			gcPercent: 400, reasonContains: []string{"GOMEMLIMIT=300MiB from the environment"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			read := false
			p, err := Decide(func(k string) string { return c.env[k] }, func() (int64, error) { read = true; return c.limit, c.limitErr })
			if wantRead := c.env["GOMEMLIMIT"] == ""; read != wantRead {
				t.Errorf("the container's limit was read: %v, want %v", read, wantRead)
			}
			if wantErr := c.limitErr != nil && read; (err != nil) != wantErr {
				t.Errorf("error %v, want one: %v", err, wantErr)
			}
			if p.GCPercent != c.gcPercent {
				t.Errorf("GCPercent %d, want %d", p.GCPercent, c.gcPercent)
			}
			if p.MemoryLimit != c.memoryLimit {
				t.Errorf("MemoryLimit %d, want %d", p.MemoryLimit, c.memoryLimit)
			}
			if len(p.Reasons) != 2 {
				t.Errorf("reasons %q: want one for GOGC and one for the memory limit", p.Reasons)
			}
			all := strings.Join(p.Reasons, "; ")
			for _, s := range c.reasonContains {
				if !strings.Contains(all, s) {
					t.Errorf("reasons %q do not say %q", all, s)
				}
			}
		})
	}
}

func TestContainerMemoryLimit(t *testing.T) {
	for _, c := range []struct {
		name    string
		files   map[string]string
		want    int64
		wantErr string
	}{
		{name: "cgroup v2", files: map[string]string{"sys/fs/cgroup/memory.max": "536870912\n"}, want: 536870912},
		{name: "cgroup v2 without a limit", files: map[string]string{"sys/fs/cgroup/memory.max": "max\n"}},
		{name: "cgroup v1", files: map[string]string{"sys/fs/cgroup/memory/memory.limit_in_bytes": "268435456\n"}, want: 268435456},
		{name: "cgroup v1 without a limit", files: map[string]string{"sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n"}},
		{name: "v2 wins over v1", files: map[string]string{
			"sys/fs/cgroup/memory.max": "1073741824", "sys/fs/cgroup/memory/memory.limit_in_bytes": "268435456"}, want: 1 << 30},
		{name: "no cgroup file"},
		{name: "garbage", files: map[string]string{"sys/fs/cgroup/memory.max": "lots"}, wantErr: `/sys/fs/cgroup/memory.max: "lots" is not a number of bytes`},
	} {
		t.Run(c.name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for name, data := range c.files {
				fsys[name] = &fstest.MapFile{Data: []byte(data)}
			}
			got, err := ContainerMemoryLimit(fsys)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, c.wantErr)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("ContainerMemoryLimit = %d, %v; want %d", got, err, c.want)
			}
		})
	}
}

// TestApply sets what Decide chose on the running process (GOGC unset, so
// Rapport's default; GOMEMLIMIT set, so no limit is touched).
func TestApply(t *testing.T) {
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "1TiB")
	before := debug.SetGCPercent(100)
	beforeLimit := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetGCPercent(before); debug.SetMemoryLimit(beforeLimit) })
	debug.SetMemoryLimit(math.MaxInt64)
	p, err := Apply()
	if err != nil {
		t.Fatal(err)
	}
	if got := debug.SetGCPercent(100); got != DefaultGCPercent || p.GCPercent != DefaultGCPercent {
		t.Errorf("GOGC is %d after Apply (plan %d), want %d", got, p.GCPercent, DefaultGCPercent)
	}
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 || p.MemoryLimit != 0 {
		t.Errorf("memory limit %d after Apply (plan %d): GOMEMLIMIT is set, so it must stay as it was", got, p.MemoryLimit)
	}
}
