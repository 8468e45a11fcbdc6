//go:build bench

package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/collector"
	"github.com/rapport-dev/rapport/test/utils"
)

// tallyWriteResult is one form of the key window in TestTallyWriteCost.
type tallyWriteResult struct {
	Form                 string
	Keys, Writes         int
	ObjectKB             float64
	WallMsPerWrite       float64
	APIServerCPUMsPerPut float64
	EtcdCPUMsPerPut      float64
	// The API server's and etcd's CPU while nothing is written (leases,
	// controllers), measured for a second before the writes and
	// subtracted from the figures per write.
	APIServerIdleCPUMsPerS, EtcdIdleCPUMsPerS float64
}

// TestTallyWriteCost measures what one tally write costs the API server
// and etcd, by the form of its idempotency-key window:
//
//	BENCH_OUT=docs/benchmarks go test -tags bench ./test/bench/cluster/ -run TestTallyWriteCost -v
//
// A control plane alone (no manager), one ResponseTally with two variants'
// counts, written BENCH_WRITES times (default 400) one after the other as
// the collector writes it: one more count and one more key each time, the
// oldest key dropped. Forms: the list of 1,024 22-character digests that
// Rapport wrote before spec.recentKeyDigests ("list"), and MaxRecentKeys
// (1,024) 8-byte digests packed in spec.recentKeyDigests ("packed"). The
// forms alternate over three rounds; the figures are their medians. The
// CPU per write is net of what each process spends while idle (measured
// for a second before each form's writes; /proc counts in 10 ms ticks,
// so the idle figure is coarse, but it is small next to the writes' CPU).
func TestTallyWriteCost(t *testing.T) {
	_, c := newControlPlane(t) // its client's rate limit (2,000/s) is far above these writes'
	apiserver, etcd := controlPlanePid(t, "kube-apiserver"), controlPlanePid(t, "etcd")
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "tally-"}}
	must(t, c.Create(ctx, ns))

	forms := []struct {
		name string
		keys int
	}{{"list", 1024}, {"packed", collector.MaxRecentKeys}}
	writes := envInt("BENCH_WRITES", 400)
	runs := make([][]tallyWriteResult, len(forms))
	for round := range 3 {
		for i, f := range forms {
			runs[i] = append(runs[i], tallyWrites(ctx, t, c, ns.Name, fmt.Sprintf("%s-%d-%d", f.name, f.keys, round), f.name, f.keys, writes, apiserver, etcd))
		}
	}
	var results []tallyWriteResult
	for i, f := range forms {
		r := runs[i][0]
		pick := func(get func(tallyWriteResult) float64) float64 {
			var xs []float64
			for _, x := range runs[i] {
				xs = append(xs, get(x))
			}
			return quantile(xs, 0.5)
		}
		r.WallMsPerWrite = pick(func(x tallyWriteResult) float64 { return x.WallMsPerWrite })
		r.APIServerCPUMsPerPut = pick(func(x tallyWriteResult) float64 { return x.APIServerCPUMsPerPut })
		r.EtcdCPUMsPerPut = pick(func(x tallyWriteResult) float64 { return x.EtcdCPUMsPerPut })
		r.APIServerIdleCPUMsPerS = pick(func(x tallyWriteResult) float64 { return x.APIServerIdleCPUMsPerS })
		r.EtcdIdleCPUMsPerS = pick(func(x tallyWriteResult) float64 { return x.EtcdIdleCPUMsPerS })
		t.Logf("%s, %d keys (%.1f KB): %.2f ms per write, API server %.2f ms CPU, etcd %.2f ms CPU (medians of 3 rounds of %d writes)",
			f.name, f.keys, r.ObjectKB, r.WallMsPerWrite, r.APIServerCPUMsPerPut, r.EtcdCPUMsPerPut, writes)
		results = append(results, r)
	}
	report(t, "tally-write-cost", results)
}

// tallyWrites creates a tally holding keys key digests in form and writes
// it n times, one count and one key more each time.
func tallyWrites(ctx context.Context, t *testing.T, c client.Client, ns, name, form string, keys, n, apiserver, etcd int) tallyWriteResult {
	digest := func(i int) []byte {
		d := sha256.Sum256([]byte(fmt.Sprintf("%s/%d", name, i)))
		return d[:16]
	}
	tally := &cxv1.ResponseTally{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{cxv1.LabelExperiment: name, cxv1.LabelManagedBy: collector.ManagedBy}},
		Spec: cxv1.ResponseTallySpec{Experiment: name, Run: 1, ScoreMin: 1, Counts: []cxv1.TallyCount{
			{Segment: "all", Variant: "control", Scores: make([]int64, 5), Epochs: []cxv1.EpochCount{{Epoch: 1, Scores: make([]int64, 5)}}},
			{Segment: "all", Variant: "treatment", Scores: make([]int64, 5), Epochs: []cxv1.EpochCount{{Epoch: 1, Scores: make([]int64, 5)}}},
		}},
	}
	add := func(i int) {
		if form == "list" {
			tally.Spec.RecentKeys = append(tally.Spec.RecentKeys, base64.RawURLEncoding.EncodeToString(digest(i)))
			if len(tally.Spec.RecentKeys) > keys {
				tally.Spec.RecentKeys = tally.Spec.RecentKeys[1:]
			}
			return
		}
		tally.Spec.RecentKeyDigests = append(tally.Spec.RecentKeyDigests, digest(i)[:8]...)
		if len(tally.Spec.RecentKeyDigests) > keys*8 {
			tally.Spec.RecentKeyDigests = tally.Spec.RecentKeyDigests[8:]
		}
	}
	for i := range keys {
		add(i)
	}
	must(t, c.Create(ctx, tally))
	i0, j0 := cpuOf(t, apiserver), cpuOf(t, etcd)
	time.Sleep(time.Second) // the idle window: a measurement, not a wait for anything
	a0, e0 := cpuOf(t, apiserver), cpuOf(t, etcd)
	idleAPI, idleEtcd := a0-i0, e0-j0
	start := time.Now()
	for i := range n {
		tally.Spec.Total++
		tally.Spec.Counts[i%2].Scores[i%5]++
		tally.Spec.Counts[i%2].Epochs[0].Scores[i%5]++
		add(keys + i)
		tally.Annotations = map[string]string{collector.AnnotationLastCommitAt: time.Now().UTC().Format(time.RFC3339Nano)}
		must(t, c.Update(ctx, tally))
	}
	wall := time.Since(start)
	a1, e1 := cpuOf(t, apiserver), cpuOf(t, etcd)
	size, err := json.Marshal(tally)
	must(t, err)
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(n) }
	// CPU over the writes less what the process spends idle in as long.
	net := func(d, idle time.Duration) time.Duration { return d - time.Duration(float64(idle)*wall.Seconds()) }
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return tallyWriteResult{Form: form, Keys: keys, Writes: n, ObjectKB: float64(len(size)) / 1000,
		WallMsPerWrite: per(wall), APIServerCPUMsPerPut: per(net(a1-a0, idleAPI)), EtcdCPUMsPerPut: per(net(e1-e0, idleEtcd)),
		APIServerIdleCPUMsPerS: ms(idleAPI), EtcdIdleCPUMsPerS: ms(idleEtcd)}
}

// controlPlanePid finds the process of this test's control plane whose
// command is name (kube-apiserver or etcd): a child of this process.
func controlPlanePid(t *testing.T, name string) int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	must(t, err)
	self := strconv.Itoa(os.Getpid())
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(stat)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open {
			continue
		}
		fields := strings.Fields(s[end+1:])
		if s[open+1:end] == name && len(fields) > 1 && fields[1] == self {
			return pid
		}
	}
	t.Fatalf("no %s process among this test's children", name)
	return 0
}

func cpuOf(t *testing.T, pid int) time.Duration {
	t.Helper()
	u, err := utils.ProcessUsage(pid)
	must(t, err)
	return u.CPU
}
