package cli

import (
	"errors"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// Exit codes of kubectl-cx; see the package documentation.
const (
	ExitOK       = 0
	ExitError    = 1
	ExitUsage    = 2
	ExitNotFound = 3
	// ExitRolledBack, ExitFailed and ExitTimeout are the outcomes of
	// `status --wait` other than Succeeded (0).
	ExitRolledBack = 4
	ExitFailed     = 5
	ExitTimeout    = 6
)

// exitError carries the exit code a failure maps to.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(format, args...)}
}

func refusedErrorf(format string, args ...any) error {
	return &exitError{code: ExitError, err: fmt.Errorf(format, args...)}
}

func notFoundErrorf(format string, args ...any) error {
	return &exitError{code: ExitNotFound, err: fmt.Errorf(format, args...)}
}

// cobraUsagePrefixes are the beginnings of the errors cobra and pflag return
// for bad command lines that do not go through the flag error function.
var cobraUsagePrefixes = []string{
	"unknown command", "unknown flag", "unknown shorthand flag", "flag needs an argument",
	"invalid argument", "required flag", "accepts ", "requires ",
}

// ExitCode returns the exit code for an error returned by a command.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if apierrors.IsNotFound(err) {
		return ExitNotFound
	}
	msg := err.Error()
	for _, p := range cobraUsagePrefixes {
		if strings.HasPrefix(msg, p) {
			return ExitUsage
		}
	}
	return ExitError
}

// experimentError turns an API error about one experiment into a message for
// people, keeping "not found" distinct (exit code 3) and telling a missing
// experiment apart from a cluster without Rapport's CRDs.
func experimentError(err error, namespace, name string) error {
	if err == nil {
		return nil
	}
	if apierrors.IsNotFound(err) {
		var se apierrors.APIStatus
		if errors.As(err, &se) {
			if d := se.Status().Details; d != nil && d.Name == name {
				return notFoundErrorf("cxexperiment %q not found in namespace %q", name, namespace)
			}
		}
		return notServed(err)
	}
	return err
}

// notServed is the error for a cluster without Rapport's CRDs: exit code 1,
// not 3, although the API answered 404.
func notServed(err error) error {
	return &exitError{code: ExitError, err: fmt.Errorf("the cluster does not serve cxexperiments.cx.rapport.dev (is Rapport installed?): %w", err)}
}

// listError explains a failed list of experiments.
func listError(err error) error {
	if err != nil && apierrors.IsNotFound(err) {
		return notServed(err)
	}
	return err
}
