// Package specs runs Ginkgo suites so that a failure says why at the very
// end of go test's output.
package specs

import (
	"fmt"
	"strings"
	"testing"

	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/ginkgo/v2/types"
)

// maxLines is how many lines of a failure message Run repeats.
const maxLines = 8

// Run runs the suite like ginkgo.RunSpecs. Ginkgo's closing summary names
// the failed specs but not why, and a CI log often shows only its tail; so
// when specs fail, Run repeats each one's reason with t.Log, after the
// summary.
func Run(t *testing.T, description string) bool {
	var reasons []string
	ginkgo.ReportAfterSuite("failure reasons", func(r ginkgo.Report) {
		for _, s := range r.SpecReports {
			if s.Failed() {
				reasons = append(reasons, Reason(s))
			}
		}
	})
	ok := ginkgo.RunSpecs(t, description)
	for _, r := range reasons {
		t.Log(r)
	}
	return ok
}

// Reason is a short account of a failed spec: its name, where it failed and
// the first lines of the failure message.
func Reason(s types.SpecReport) string {
	lines := strings.Split(strings.TrimSpace(s.FailureMessage()), "\n")
	if len(lines) > maxLines {
		lines = append(lines[:maxLines], fmt.Sprintf("... (%d more lines above in the log)", len(lines)-maxLines))
	}
	name := s.FullText()
	if name == "" {
		name = s.LeafNodeType.String()
	}
	return fmt.Sprintf("FAILED %s [%s] at %s:\n%s", name, s.State, s.FailureLocation(), strings.Join(lines, "\n"))
}
