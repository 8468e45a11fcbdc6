package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// Options holds what every command shares: the streams, the kubeconfig flags
// and the environment (clock, terminal, NO_COLOR). Tests replace Now,
// Getenv and IsTerminal.
type Options struct {
	genericiooptions.IOStreams
	ConfigFlags *genericclioptions.ConfigFlags

	// Now is the clock used for ages and action tokens.
	Now func() time.Time
	// Getenv reads the environment (NO_COLOR).
	Getenv func(string) string
	// IsTerminal reports whether a writer is a terminal (colour, in-place redraw).
	IsTerminal func(io.Writer) bool

	c client.WithWatch
}

// NewOptions returns the options of a real run on the given streams.
func NewOptions(streams genericiooptions.IOStreams) *Options {
	return &Options{
		IOStreams:   streams,
		ConfigFlags: genericclioptions.NewConfigFlags(true),
		Now:         time.Now,
		Getenv:      os.Getenv,
		IsTerminal:  isTerminal,
	}
}

// isTerminal reports whether w is a character device such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// stderrf writes a note or warning to stderr. A failure to write to stderr
// cannot be reported anywhere, so it is ignored.
func (o *Options) stderrf(format string, args ...any) {
	_, _ = fmt.Fprintf(o.ErrOut, format, args...)
}

// tty reports whether stdout is a terminal.
func (o *Options) tty() bool { return o.IsTerminal != nil && o.IsTerminal(o.Out) }

// color reports whether to colour stdout: a terminal, and NO_COLOR unset or empty.
func (o *Options) color() bool { return o.tty() && o.Getenv("NO_COLOR") == "" }

func (o *Options) renderOptions() RenderOptions {
	return RenderOptions{Now: o.Now(), Color: o.color()}
}

// scheme knows the types kubectl-cx reads.
var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := cxv1.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := eventsv1.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := corev1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}()

// restMapper maps the kinds kubectl-cx uses, so that no discovery
// round trip is needed.
func restMapper() meta.RESTMapper {
	m := meta.NewDefaultRESTMapper(nil)
	m.Add(cxv1.GroupVersion.WithKind("CXExperiment"), meta.RESTScopeNamespace)
	m.Add(eventsv1.SchemeGroupVersion.WithKind("Event"), meta.RESTScopeNamespace)
	m.Add(httpRouteGVK, meta.RESTScopeNamespace)
	m.Add(cxv1.GroupVersion.WithKind("ResponseTally"), meta.RESTScopeNamespace)
	m.Add(corev1.SchemeGroupVersion.WithKind("ConfigMap"), meta.RESTScopeNamespace)
	return m
}

// client returns a client for the cluster of the kubeconfig flags.
func (o *Options) client() (client.WithWatch, error) {
	if o.c != nil {
		return o.c, nil
	}
	cfg, err := o.ConfigFlags.ToRESTConfig()
	if err != nil {
		return nil, err
	}
	cfg.UserAgent = "kubectl-cx"
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme, Mapper: restMapper()})
	if err != nil {
		return nil, err
	}
	o.c = c
	return c, nil
}

// namespace is the namespace of -n, else of the kubeconfig context, else "default".
func (o *Options) namespace() (string, error) {
	ns, _, err := o.ConfigFlags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return "", err
	}
	return ns, nil
}

// clientInNamespace returns the client of client() and the namespace of
// namespace(), for the commands that work on one namespace.
func (o *Options) clientInNamespace() (client.WithWatch, string, error) {
	c, err := o.client()
	if err != nil {
		return nil, "", err
	}
	ns, err := o.namespace()
	if err != nil {
		return nil, "", err
	}
	return c, ns, nil
}

const rootLong = `kubectl cx inspects and steers Rapport's customer-experience experiments
(CXExperiment, short name cxe): what each variant scores against the control in
each customer segment, where the rollout stands, and the manual actions
(pause, resume, promote, abort, retry). "analyze" runs the decision engine
offline, without a cluster, for teams planning a test.

Exit codes:
  0  success (for status --wait: the run Succeeded)
  1  error, or an action refused because the phase makes it pointless (see --force)
  2  bad usage (unknown command or flag, wrong arguments, invalid flag value)
  3  experiment not found (or deleted while waiting)
  4  status --wait: the run ended RolledBack
  5  status --wait: the run ended Failed
  6  status --wait: the timeout passed before the run ended

Colour is used only when stdout is a terminal and NO_COLOR is unset.`

const rootExample = `  # Experiments of the current namespace, then of every namespace
  kubectl cx list
  kubectl cx list -A

  # Where an experiment stands, refreshed as it changes
  kubectl cx status checkout-redesign -n shop --watch

  # Manual actions
  kubectl cx pause checkout-redesign
  kubectl cx promote checkout-redesign

  # The final report, for the decision record
  kubectl cx report checkout-redesign -o markdown > checkout-redesign.md

  # A live dashboard in the browser, at http://127.0.0.1:3100/
  kubectl cx dashboard -A

  # How many responses does a test need? (no cluster needed)
  kubectl cx analyze --plan --baseline 85 --drop 5

  # In a CI pipeline: wait for the outcome (exit 0 promoted, 4 rolled back, 5 failed, 6 timed out)
  kubectl cx status checkout-redesign -n shop --timeout 30m`

// NewRootCommand builds the kubectl-cx command tree on o.
func NewRootCommand(o *Options) *cobra.Command {
	root := &cobra.Command{
		Use:           "kubectl-cx",
		Short:         "Inspect and steer Rapport customer-experience experiments",
		Long:          rootLong,
		Example:       rootExample,
		SilenceErrors: true,
		SilenceUsage:  true,
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl cx"},
		Args:          noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	root.CompletionOptions.HiddenDefaultCmd = false
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &exitError{code: ExitUsage, err: err}
	})
	o.ConfigFlags.AddFlags(root.PersistentFlags())
	root.SetIn(o.In)
	root.SetOut(o.Out)
	root.SetErr(o.ErrOut)

	root.AddCommand(
		newListCommand(o),
		newStatusCommand(o),
		newReportCommand(o),
		newDashboardCommand(o),
		newAnalyzeCommand(o),
		newVersionCommand(o),
	)
	for _, a := range actions {
		root.AddCommand(newActionCommand(o, a))
	}
	// Cobra's completion command (bash, zsh, fish, powershell), with how to
	// hook it into kubectl's plugin completion.
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			c.Long = completionLong
		}
	}
	return root
}

// Run executes kubectl-cx with args (without the program name) and returns
// the exit code. Errors are printed to o.ErrOut.
func Run(ctx context.Context, o *Options, args []string) int {
	root := NewRootCommand(o)
	if args == nil {
		args = []string{} // cobra reads os.Args for nil
	}
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	code := ExitCode(err)
	o.stderrf("Error: %v\n", err)
	if code == ExitUsage {
		o.stderrf("Run 'kubectl cx %s--help' for usage.\n", subcommandOf(root, args))
	}
	return code
}

// subcommandOf returns "NAME " when args name a subcommand, for the usage hint.
func subcommandOf(root *cobra.Command, args []string) string {
	cmd, _, err := root.Find(args)
	if err != nil || cmd == root {
		return ""
	}
	return strings.TrimPrefix(cmd.CommandPath(), root.CommandPath()+" ") + " "
}

// noArgs refuses positional arguments with a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		if cmd.HasSubCommands() {
			return usageErrorf("unknown command %q for %q", args[0], "kubectl cx")
		}
		return usageErrorf("%q takes no arguments, got %q", cmd.CommandPath(), args)
	}
	return nil
}

// oneName requires exactly one argument, the experiment's name.
func oneName(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return usageErrorf("%q needs exactly one experiment NAME, got %d argument(s)", cmd.Name(), len(args))
	}
	return nil
}

// outputFlag validates an -o value against the allowed formats.
func outputFlag(value string, allowed ...string) error {
	for _, a := range allowed {
		if value == a {
			return nil
		}
	}
	return usageErrorf("--output %q is not supported here; use one of %s", value, strings.Join(quoteAll(allowed), ", "))
}

func quoteAll(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		if v == "" {
			out[i] = `"" (default)`
			continue
		}
		out[i] = v
	}
	return out
}
