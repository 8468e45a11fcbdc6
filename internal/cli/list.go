package cli

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

func newListCommand(o *Options) *cobra.Command {
	var allNamespaces bool
	var output string
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List experiments: phase, step, weight, segments and scores",
		Long: `List the CXExperiments of the namespace (-n, else the kubeconfig context's),
or of every namespace with -A.

Columns: PHASE; STEP as current/total; WEIGHT, the share of each segment's
traffic sent to EACH non-control variant at this step; SEGMENTS the experiment
is judged in ("all" without segments); CONTROL, the control's score pooled
across segments; VARIANTS, each variant's pooled score and its difference to
the control; AGE.

-o json|yaml prints the list as the API returns it (managedFields left out).`,
		Example: `  kubectl cx list
  kubectl cx list -n shop
  kubectl cx list -A
  kubectl cx list -o json | jq '.items[].status.phase'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := outputFlag(output, "", "json", "yaml"); err != nil {
				return err
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			var opts []client.ListOption
			ns := ""
			if !allNamespaces {
				if ns, err = o.namespace(); err != nil {
					return err
				}
				opts = append(opts, client.InNamespace(ns))
			}
			list := &cxv1.CXExperimentList{}
			if err := c.List(cmd.Context(), list, opts...); err != nil {
				return listError(err)
			}
			sortExperiments(list.Items)
			if output != "" {
				out := &cxv1.CXExperimentList{ListMeta: list.ListMeta}
				out.APIVersion, out.Kind = cxv1.GroupVersion.String(), "CXExperimentList"
				for i := range list.Items {
					out.Items = append(out.Items, *forOutput(&list.Items[i]))
				}
				if out.Items == nil {
					out.Items = []cxv1.CXExperiment{}
				}
				return printObject(o.Out, out, output)
			}
			if len(list.Items) == 0 {
				if allNamespaces {
					o.stderrf("No experiments found.\n")
				} else {
					o.stderrf("No experiments found in namespace %s.\n", ns)
				}
				return nil
			}
			return RenderList(o.Out, list.Items, allNamespaces, o.renderOptions())
		},
	}
	cmd.Flags().BoolVarP(&allNamespaces, "all-namespaces", "A", false, "list the experiments of every namespace")
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json or yaml (default: a table)")
	return cmd
}

func sortExperiments(items []cxv1.CXExperiment) {
	sort.SliceStable(items, func(i, j int) bool {
		if items[i].Namespace != items[j].Namespace {
			return items[i].Namespace < items[j].Namespace
		}
		return items[i].Name < items[j].Name
	})
}

// RenderList writes the experiments as a table: NAMESPACE (with
// allNamespaces), NAME, PHASE, STEP, WEIGHT, SEGMENTS, CONTROL, VARIANTS, AGE.
func RenderList(w io.Writer, items []cxv1.CXExperiment, allNamespaces bool, o RenderOptions) error {
	p := &printer{w: w}
	t := &table{}
	head := []string{"NAME", "PHASE", "STEP", "WEIGHT", "SEGMENTS", "CONTROL", "VARIANTS", "AGE"}
	if allNamespaces {
		head = append([]string{"NAMESPACE"}, head...)
	}
	t.header(head...)
	for i := range items {
		e := &items[i]
		row := []cell{
			c(e.Name),
			colored(phaseColor(e.Status.Phase), phaseOf(e)),
			c(stepOf(e)),
			c(weightOf(e)),
			c(segmentsOf(e)),
			c(orDash(e.Status.Summary.Control)),
			c(orDash(e.Status.Summary.Variants)),
			c(age(o.Now, e.CreationTimestamp.Time)),
		}
		if allNamespaces {
			row = append([]cell{c(e.Namespace)}, row...)
		}
		t.add(row...)
	}
	t.write(p, o)
	return p.err
}

// phaseOf is the phase, "Pending" before the controller first wrote status.
func phaseOf(e *cxv1.CXExperiment) string {
	if e.Status.Phase == "" {
		return string(cxv1.PhasePending)
	}
	return string(e.Status.Phase)
}

// stepOf is "current/total", e.g. "2/3" ("0/3" before the first step).
func stepOf(e *cxv1.CXExperiment) string {
	return fmt.Sprintf("%d/%d", e.Status.CurrentStep, len(e.Spec.Steps))
}

// weightOf is the step weight in percent, "-" before the first step.
func weightOf(e *cxv1.CXExperiment) string {
	if e.Status.CurrentStep == 0 {
		return "-"
	}
	return fmt.Sprintf("%d%%", e.Status.StepWeight)
}

// segmentsOf names the segments, at most two then "+N".
func segmentsOf(e *cxv1.CXExperiment) string {
	names := e.Spec.SegmentNames()
	if len(names) <= 2 {
		return strings.Join(names, ",")
	}
	return fmt.Sprintf("%s,%s,+%d", names[0], names[1], len(names)-2)
}
