package cli

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/history"
	"github.com/rapport-dev/rapport/internal/report"
)

// writeReportHTML writes the HTML report: the experiment, its history
// ConfigMap and its ResponseTally. A missing or unreadable history or tally
// leaves its charts out (the page says so) with a warning on stderr.
func (o *Options) writeReportHTML(ctx context.Context, c client.Client, exp *cxv1.CXExperiment, r Report) error {
	in := report.Input{Experiment: exp, Decision: r.Decision.Summary, Now: o.Now()}
	h, err := readHistory(ctx, c, exp)
	if err != nil {
		o.stderrf("Warning: %v; the report has no charts over time\n", err)
	}
	in.History = h
	tally := &cxv1.ResponseTally{}
	switch err := c.Get(ctx, types.NamespacedName{Namespace: exp.Namespace, Name: exp.Name}, tally); {
	case err == nil:
		in.Tally = tally
	case apierrors.IsNotFound(err):
	default:
		o.stderrf("Warning: cannot read the ResponseTally %s/%s; the report has no score distribution: %v\n", exp.Namespace, exp.Name, err)
	}
	return report.WriteHTML(o.Out, in)
}

// readHistory reads the experiment's history ConfigMap; nil without error
// when there is none yet.
func readHistory(ctx context.Context, c client.Client, exp *cxv1.CXExperiment) (*history.History, error) {
	cm := &corev1.ConfigMap{}
	name := history.ConfigMapName(exp.Name)
	if err := c.Get(ctx, types.NamespacedName{Namespace: exp.Namespace, Name: name}, cm); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("cannot read the history ConfigMap %s/%s: %w", exp.Namespace, name, err)
	}
	h, err := history.Decode(cm.BinaryData[history.Key])
	if err != nil {
		return nil, fmt.Errorf("the history ConfigMap %s/%s: %w", exp.Namespace, name, err)
	}
	return h, nil
}
