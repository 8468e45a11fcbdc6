package cli

import (
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

const completionLong = `Print a shell completion script for kubectl-cx.

As a kubectl plugin (kubectl 1.26 or newer completes plugins): put an
executable named kubectl_complete-cx on your PATH that runs

  #!/usr/bin/env sh
  kubectl cx __complete "$@"

(the release archives carry it), and 'kubectl cx <TAB>' completes commands,
flags and experiment names.

Called as kubectl-cx, load the script of your shell:

  bash:        source <(kubectl-cx completion bash)
  zsh:         kubectl-cx completion zsh > "${fpath[1]}/_kubectl-cx"
  fish:        kubectl-cx completion fish | source
  PowerShell:  kubectl-cx completion powershell | Out-String | Invoke-Expression`

// completeExperiments completes an experiment NAME from the namespace of
// the kubeconfig flags; it offers nothing when the cluster cannot be read.
func (o *Options) completeExperiments(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	c, ns, err := o.clientInNamespace()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	list := &cxv1.CXExperimentList{}
	if err := c.List(cmd.Context(), list, client.InNamespace(ns)); err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []string
	for _, e := range list.Items {
		if strings.HasPrefix(e.Name, toComplete) {
			out = append(out, e.Name)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
