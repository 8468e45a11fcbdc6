package main

import (
	"context"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/cli"
	"github.com/rapport-dev/rapport/internal/history"
)

// report writes the experiment's HTML report with kubectl cx (in process)
// and prints its path. The file goes to a directory of its own, kept when
// the demo cleans up its working directory.
func (d *demo) report(ctx context.Context, exp *cxv1.CXExperiment) {
	d.waitHistory(ctx, exp)
	dir, err := os.MkdirTemp("", "rapport-demo-report-")
	if err != nil {
		d.say("report: %v", err)
		return
	}
	path := filepath.Join(dir, expName+".html")
	f, err := os.Create(path)
	if err != nil {
		d.say("report: %v", err)
		return
	}
	defer func() { _ = f.Close() }()
	code := cli.Run(ctx, cli.NewOptions(genericiooptions.IOStreams{In: os.Stdin, Out: f, ErrOut: d.out}),
		[]string{"--kubeconfig", d.kubeconfig, "report", expName, "-n", demoNS, "-o", "html"})
	if code != 0 {
		d.say("report: kubectl cx report -o html exited %d", code)
		return
	}
	d.say("report of %s (kubectl cx report %s -n %s -o html): %s", expName, expName, demoNS, path)
}

// waitHistory waits (at most 10s) until the history ConfigMap holds the
// run's last point: the controller writes it just after the status that
// ended the run.
func (d *demo) waitHistory(ctx context.Context, exp *cxv1.CXExperiment) {
	deadline := time.Now().Add(10 * time.Second)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		cm := &corev1.ConfigMap{}
		if err := d.c.Get(ctx, types.NamespacedName{Namespace: demoNS, Name: history.ConfigMapName(expName)}, cm); err == nil {
			if h, err := history.Decode(cm.BinaryData[history.Key]); err == nil && h.Run == exp.Status.Run && exp.Status.CompletedAt != nil {
				for _, s := range h.Series {
					if n := len(s.Points); n > 0 && s.Points[n-1].At >= exp.Status.CompletedAt.UnixMilli() {
						return
					}
				}
			}
		}
		time.Sleep(200 * time.Millisecond) // waiting for the controller's write
	}
}
