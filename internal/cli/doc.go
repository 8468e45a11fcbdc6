// Package cli implements kubectl-cx, the kubectl plugin of Rapport
// (`kubectl cx <command>`).
//
// Commands:
//
//	list                 table of the experiments of a namespace (-A: all namespaces)
//	status NAME          readable view of one experiment (--watch follows it;
//	                     --wait/--timeout waits for the outcome, see the exit codes)
//	pause|resume NAME    set spec.paused
//	promote|abort|retry NAME
//	                     request a manual action (annotation with a fresh token)
//	report NAME          final report, Markdown (default) or JSON
//	dashboard            live web dashboard on localhost (list, experiment
//	                     pages over SSE, the manual actions as buttons)
//	analyze              run the decision engine offline on counts (no cluster; -o json)
//	version              client, Kubernetes and Rapport API versions
//	completion SHELL     shell completion (and kubectl_complete-cx for kubectl)
//
// list and status print through kubectl get's printing flags and
// k8s.io/cli-runtime's printers: -o wide|name|json|yaml|jsonpath=...|
// custom-columns=...|go-template=..., --no-headers, --sort-by, -L,
// --show-labels, --show-managed-fields.
//
// Every command that talks to a cluster takes the standard kubeconfig flags
// (--kubeconfig, --context, -n/--namespace, ...) of
// k8s.io/cli-runtime/pkg/genericclioptions.
//
// # Exit codes
//
//	0  success (status --wait: the run Succeeded)
//	1  error, or an action refused because the phase makes it pointless (see --force)
//	2  bad usage: unknown command or flag, wrong number of arguments, invalid flag value
//	3  the experiment (or, for report/status, the object asked for) does not
//	   exist, or was deleted while status --wait waited
//	4  status --wait: the run ended RolledBack
//	5  status --wait: the run ended Failed
//	6  status --wait: the timeout passed first
//
// # Design
//
// Commands fetch objects and hand them to renderers (ExperimentTable for
// the table printer, RenderStatus, RenderReportMarkdown, BuildReport,
// RenderAnalysis, RenderPlan), which are pure functions of their inputs and
// of a RenderOptions value (the clock and whether to use colour), so they are
// tested with golden files. The status view stays a describe-like renderer
// of its own (sections, colour); tables and objects go through kubectl's
// printers. Colour is used only when stdout is a terminal and NO_COLOR is
// unset.
//
// The dashboard (dashboard.go) renders the same objects as HTML: pure view
// builders (dashboard_view.go, dashboard_chart.go's segmentChart) feed
// html/template pages embedded from dashboard/; live pages follow the
// watches of status --watch and stream over Server-Sent Events; its buttons
// act through applyAction, as the action commands do.
package cli
