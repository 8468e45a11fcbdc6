// Package gctune sets the manager's garbage-collector defaults: a GOGC of
// 400 instead of Go's 100, and a soft memory limit at 90% of the
// container's memory limit, each only when the environment does not set
// GOGC or GOMEMLIMIT itself.
//
// Why: the collector allocates short-lived objects for every answer (the
// request, its decoded payload, the response), while the objects that live
// long (the informers' caches) are few. With GOGC=100 the heap target stays
// small and Go collects several times a second under load, each time
// scanning the stacks of every connection's goroutines. GOGC=400 lets the
// heap grow to five times the live heap between collections (the measured
// effect, CPU and memory, is in docs/benchmarks.md). The soft limit keeps
// that headroom inside the container's memory limit: as the heap nears it,
// Go collects more often, whatever GOGC says. It cannot help a live heap
// that outgrows the container; that needs a larger limit.
//
// The limit is read from /sys/fs/cgroup as the container sees it (cgroup
// v2 memory.max, else v1 memory.limit_in_bytes), which is the container's
// own cgroup under the usual container runtimes (a private cgroup
// namespace, or v1's per-container mount). Where it is not (a host cgroup
// namespace), no limit is found, the start-up log says so, and GOMEMLIMIT
// can be set instead. Libraries such as automemlimit resolve the cgroup
// from /proc/self/mountinfo too; two files did not seem worth a dependency.
package gctune

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

const (
	// DefaultGCPercent is the GOGC the manager runs with unless the
	// environment sets one.
	DefaultGCPercent = 400
	// LimitFraction is the share of the container's memory limit the
	// manager's soft memory limit is set to. Go counts its own mappings
	// against the soft limit; the rest of the container's limit is left for
	// what the cgroup charges besides (the kernel's socket buffers of the
	// collector's connections, page cache) and for the binary itself.
	LimitFraction = 0.9
)

// cgroup files holding a container's memory limit, as fs.FS paths from /:
// cgroup v2, then v1.
var limitFiles = []string{"sys/fs/cgroup/memory.max", "sys/fs/cgroup/memory/memory.limit_in_bytes"}

// unlimited is where cgroup v1 writes "no limit" (a page-aligned
// math.MaxInt64); anything this large is no limit.
const unlimited = int64(1) << 60

// Plan is what Decide chose. A zero field leaves Go's setting as it is.
type Plan struct {
	// GCPercent is the GOGC to set.
	GCPercent int
	// MemoryLimit is the soft memory limit to set, in bytes.
	MemoryLimit int64
	// Reasons say, for the log, where each setting came from.
	Reasons []string
}

// Decide chooses the settings from the environment (getenv) and the
// container's memory limit in bytes, which it reads with limit (0: none)
// only when GOMEMLIMIT is not set. An error reading the limit is returned
// with the plan, which then sets no memory limit and says why.
func Decide(getenv func(string) string, limit func() (int64, error)) (Plan, error) {
	var p Plan
	if v := getenv("GOGC"); v != "" {
		p.Reasons = append(p.Reasons, fmt.Sprintf("GOGC=%s from the environment", v))
	} else {
		p.GCPercent = DefaultGCPercent
		p.Reasons = append(p.Reasons, fmt.Sprintf("GOGC=%d (Rapport's default; set GOGC to change it)", DefaultGCPercent))
	}
	if v := getenv("GOMEMLIMIT"); v != "" {
		p.Reasons = append(p.Reasons, fmt.Sprintf("GOMEMLIMIT=%s from the environment", v))
		return p, nil
	}
	containerLimit, err := limit()
	switch {
	case err != nil:
		p.Reasons = append(p.Reasons, "no memory limit: the container's could not be read (set GOMEMLIMIT to give one)")
	case containerLimit > 0:
		p.MemoryLimit = int64(math.Floor(float64(containerLimit) * LimitFraction))
		p.Reasons = append(p.Reasons, fmt.Sprintf("memory limit %d MiB, %.0f%% of the container's %d MiB (set GOMEMLIMIT to change it)",
			p.MemoryLimit>>20, LimitFraction*100, containerLimit>>20))
	default:
		p.Reasons = append(p.Reasons, "no memory limit: none found for the container (set GOMEMLIMIT to give one)")
	}
	return p, err
}

// ContainerMemoryLimit reads the container's memory limit in bytes from
// the cgroup files under fsys (the root file system): 0 when there is none
// or no cgroup file says.
func ContainerMemoryLimit(fsys fs.FS) (int64, error) {
	for _, name := range limitFiles {
		b, err := fs.ReadFile(fsys, name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("read /%s: %w", name, err)
		}
		v := strings.TrimSpace(string(b))
		if v == "max" {
			return 0, nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("read /%s: %q is not a number of bytes", name, v)
		}
		if n >= unlimited {
			return 0, nil
		}
		return n, nil
	}
	return 0, nil
}

// Apply decides from the process's environment and its container's
// memory limit (read from the root file system's cgroup files), and sets
// the result. An error reading the limit is returned after the rest is
// applied.
func Apply() (Plan, error) {
	p, err := Decide(os.Getenv, func() (int64, error) { return ContainerMemoryLimit(os.DirFS("/")) })
	if p.GCPercent != 0 {
		debug.SetGCPercent(p.GCPercent)
	}
	if p.MemoryLimit != 0 {
		debug.SetMemoryLimit(p.MemoryLimit)
	}
	return p, err
}
