package cli

import (
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

func newListCommand(o *Options) *cobra.Command {
	var allNamespaces bool
	var out *outputFlags
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
the control; AGE. -o wide adds RUN, TOUCHPOINT, TRAFFIC, READY (the Ready
condition's status/reason) and MESSAGE.

Output goes through kubectl's printers: -o wide, name, json, yaml,
jsonpath=..., jsonpath-as-json=..., custom-columns=..., go-template=...,
with --no-headers, --show-labels, -L, --sort-by and --show-managed-fields as
in kubectl get. json and yaml print a CXExperimentList.`,
		Example: `  kubectl cx list
  kubectl cx list -n shop -o wide
  kubectl cx list -A --sort-by .status.phase
  kubectl cx list -o name
  kubectl cx list -o jsonpath='{range .items[*]}{.metadata.name}{"\t"}{.status.phase}{"\n"}{end}'
  kubectl cx list -o custom-columns=NAME:.metadata.name,RUN:.status.run,READY:.status.conditions[?(@.type=="Ready")].status`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := out.printer(); err != nil {
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
			if len(list.Items) == 0 && out.human() {
				if allNamespaces {
					o.stderrf("No experiments found.\n")
				} else {
					o.stderrf("No experiments found in namespace %s.\n", ns)
				}
				return nil
			}
			return out.printExperiments(o.Out, list.Items, false, allNamespaces, o.Now())
		},
	}
	cmd.Flags().BoolVarP(&allNamespaces, "all-namespaces", "A", false, "list the experiments of every namespace")
	out = newOutputFlags(cmd)
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
