package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/printers"
	"k8s.io/kubectl/pkg/cmd/get"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// outputFlags are kubectl get's printing flags (-o
// wide|name|json|yaml|jsonpath=...|custom-columns=...|go-template=...,
// --no-headers, --show-labels, -L, --sort-by, --show-managed-fields), with
// the printers of k8s.io/cli-runtime and kubectl behind them, so that
// scripts written for `kubectl get` work unchanged.
type outputFlags struct {
	*get.PrintFlags
}

func newOutputFlags(cmd *cobra.Command) *outputFlags {
	f := &outputFlags{get.NewGetPrintFlags()}
	f.AddFlags(cmd)
	f.SetKind(cxv1.GroupVersion.WithKind("CXExperiment").GroupKind())
	return f
}

// format is the -o value.
func (f *outputFlags) format() string { return *f.OutputFormat }

// human reports whether the output is a table ("" or "wide").
func (f *outputFlags) human() bool { return f.format() == "" || f.format() == "wide" }

// printer returns the printer of the flags, or a usage error naming the
// formats kubectl-cx accepts.
func (f *outputFlags) printer() (printers.ResourcePrinter, error) {
	p, err := f.ToPrinter()
	if err != nil {
		if genericclioptions.IsNoCompatiblePrinterError(err) {
			return nil, usageErrorf("--output %q is not supported; use one of %s", f.format(), strings.Join(f.AllowedFormats(), ", "))
		}
		return nil, usageErrorf("%v", err)
	}
	return p, nil
}

// printExperiments prints experiments with the -o printer: a table of
// ExperimentTable for "" and "wide", else the list (or the one object) as
// the API returns it.
func (f *outputFlags) printExperiments(w io.Writer, items []cxv1.CXExperiment, single bool, allNamespaces bool, now time.Time) error {
	if allNamespaces {
		if err := f.EnsureWithNamespace(); err != nil {
			return err
		}
	}
	p, err := f.printer()
	if err != nil {
		return err
	}
	if f.human() {
		t, err := ExperimentTable(items, now)
		if err != nil {
			return err
		}
		if by := *f.HumanReadableFlags.SortBy; by != "" {
			sortField, err := get.RelaxedJSONPathExpression(by)
			if err != nil {
				return usageErrorf("--sort-by %q: %v", by, err)
			}
			s, err := get.NewTableSorter(t, sortField)
			if err != nil {
				return usageErrorf("--sort-by %q: %v", by, err)
			}
			if err := s.Sort(); err != nil {
				return err
			}
		}
		return p.PrintObj(t, w)
	}
	// As unstructured objects, like kubectl get: a field the API left out
	// prints as <none> in custom columns, not as its Go zero value.
	objs := make([]*unstructured.Unstructured, 0, len(items))
	for i := range items {
		u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(withTypeMeta(&items[i]))
		if err != nil {
			return err
		}
		objs = append(objs, &unstructured.Unstructured{Object: u})
	}
	if single || f.format() == "name" { // kubectl prints names one by one
		for _, u := range objs {
			if err := p.PrintObj(u, w); err != nil {
				return err
			}
		}
		return nil
	}
	list := &unstructured.UnstructuredList{Object: map[string]any{
		"apiVersion": cxv1.GroupVersion.String(), "kind": "CXExperimentList", "metadata": map[string]any{},
	}}
	for _, u := range objs {
		list.Items = append(list.Items, *u)
	}
	return p.PrintObj(list, w)
}

// experimentColumns are the table's columns; Priority 1 columns show with
// -o wide only.
var experimentColumns = []metav1.TableColumnDefinition{
	{Name: "Name", Type: "string", Format: "name", Description: "metadata.name"},
	{Name: "Phase", Type: "string", Description: "status.phase (Pending before the controller first wrote status)"},
	{Name: "Step", Type: "string", Description: "current step / steps"},
	{Name: "Weight", Type: "string", Description: "the share of each segment's traffic sent to each non-control variant at this step"},
	{Name: "Segments", Type: "string", Description: "the segments judged (all without segments)"},
	{Name: "Control", Type: "string", Description: "the control's score pooled across segments"},
	{Name: "Variants", Type: "string", Description: "each variant's pooled score and its difference to the control"},
	{Name: "Age", Type: "string", Description: "time since creation"},
	{Name: "Run", Type: "integer", Priority: 1, Description: "status.run"},
	{Name: "Touchpoint", Type: "string", Priority: 1, Description: "spec.touchpoint"},
	{Name: "Traffic", Type: "string", Priority: 1, Description: "the HTTPRoute, or replicas"},
	{Name: "Ready", Type: "string", Priority: 1, Description: "the Ready condition: status and reason"},
	{Name: "Message", Type: "string", Priority: 1, Description: "the Ready condition's message"},
}

// ExperimentTable is the table `kubectl cx list` prints, as a
// metav1.Table for cli-runtime's table printer (which adds NAMESPACE with
// -A, and label columns).
func ExperimentTable(items []cxv1.CXExperiment, now time.Time) (*metav1.Table, error) {
	t := &metav1.Table{ColumnDefinitions: experimentColumns}
	for i := range items {
		e := &items[i]
		obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(withTypeMeta(e))
		if err != nil {
			return nil, err
		}
		ready, message := "-", ""
		if c := meta.FindStatusCondition(e.Status.Conditions, cxv1.ConditionReady); c != nil {
			ready, message = fmt.Sprintf("%s/%s", c.Status, c.Reason), c.Message
		}
		t.Rows = append(t.Rows, metav1.TableRow{
			Cells: []any{
				e.Name, phaseOf(e), stepOf(e), weightOf(e), segmentsOf(e),
				orDash(e.Status.Summary.Control), orDash(e.Status.Summary.Variants), age(now, e.CreationTimestamp.Time),
				int64(max(e.Status.Run, 1)), orDash(e.Spec.Touchpoint), trafficColumn(e), ready, orDash(oneLine(message)),
			},
			Object: runtime.RawExtension{Object: &unstructured.Unstructured{Object: obj}},
		})
	}
	return t, nil
}

// trafficColumn names what moves the traffic: "route/checkout" or "replicas".
func trafficColumn(e *cxv1.CXExperiment) string {
	switch t := e.Spec.Traffic; {
	case t.GatewayAPI != nil:
		return "route/" + t.GatewayAPI.HTTPRoute
	case t.Replicas != nil:
		return "replicas"
	}
	return "-"
}
