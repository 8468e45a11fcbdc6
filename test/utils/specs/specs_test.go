package specs

import (
	"strings"
	"testing"

	"github.com/onsi/ginkgo/v2/types"
)

func TestReason(t *testing.T) {
	long := strings.Repeat("line\n", 20)
	cases := []struct {
		name   string
		report types.SpecReport
		want   []string
		lines  int
	}{
		{
			name: "assertion",
			report: types.SpecReport{
				ContainerHierarchyTexts: []string{"Controller SIGKILLed"}, LeafNodeText: "keeps every response",
				LeafNodeType: types.NodeTypeIt, State: types.SpecStateFailed,
				Failure: types.Failure{Message: "counted once\nExpected\n    <int64>: 1\nto equal\n    <int64>: 2",
					Location: types.CodeLocation{FileName: "kill_test.go", LineNumber: 85}},
			},
			want:  []string{"FAILED Controller SIGKILLed keeps every response [failed] at kill_test.go:85:", "<int64>: 2"},
			lines: 6,
		},
		{
			name: "long message is cut",
			report: types.SpecReport{
				LeafNodeText: "x", LeafNodeType: types.NodeTypeIt, State: types.SpecStateTimedout,
				Failure: types.Failure{Message: long},
			},
			want:  []string{"[timedout]", "... (12 more lines above in the log)"},
			lines: 1 + maxLines + 1,
		},
		{
			name: "suite node",
			report: types.SpecReport{
				LeafNodeType: types.NodeTypeBeforeSuite, State: types.SpecStatePanicked,
				Failure: types.Failure{Message: "no control plane"},
			},
			want:  []string{"FAILED BeforeSuite [panicked]", "no control plane"},
			lines: 2,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Reason(c.report)
			for _, w := range c.want {
				if !strings.Contains(got, w) {
					t.Errorf("Reason() = %q, want it to contain %q", got, w)
				}
			}
			if n := strings.Count(got, "\n") + 1; n != c.lines {
				t.Errorf("Reason() has %d lines, want %d:\n%s", n, c.lines, got)
			}
		})
	}
}
