// Command kubectl-cx is the kubectl plugin of Rapport: `kubectl cx <command>`
// lists, shows, steers and reports CXExperiments, and runs the decision engine
// offline. Install it on PATH (go install ./cmd/kubectl-cx, or make build and
// copy bin/kubectl-cx) and kubectl finds it. See internal/cli and
// docs/kubectl-cx.md; exit codes: 0 ok, 1 error or refused action, 2 bad
// usage, 3 not found, and for status --wait 4 rolled back, 5 failed, 6 timed
// out.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/rapport-dev/rapport/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, cli.NewOptions(genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}), os.Args[1:])
	stop()
	os.Exit(code)
}
