package v1alpha1

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestFence(t *testing.T) {
	tests := []struct {
		name          string
		fence         *string // nil: no annotation
		version       string  // the experiment's resourceVersion
		reached, past bool    // FenceReachedBy, FencedAt
	}{
		{name: "no fence", version: "10"},
		{name: "copy behind the fence", fence: ptr("12"), version: "11", past: true},
		{name: "copy at the fence", fence: ptr("12"), version: "12", reached: true, past: true},
		{name: "copy past the fence", fence: ptr("12"), version: "13", reached: true},
		{name: "numbers, not text", fence: ptr("9"), version: "10", reached: true},
		{name: "fence not a number", fence: ptr("abc"), version: "10"},
		{name: "empty fence", fence: ptr(""), version: "10"},
		{name: "version not a number", fence: ptr("10"), version: "v10"},
		{name: "no version", fence: ptr("10"), version: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tally := &ResponseTally{}
			if tt.fence != nil {
				tally.Annotations = map[string]string{AnnotationExperimentFence: *tt.fence}
			}
			exp := &CXExperiment{ObjectMeta: metav1.ObjectMeta{ResourceVersion: tt.version}}
			if got := tally.FenceReachedBy(exp); got != tt.reached {
				t.Errorf("FenceReachedBy = %v, want %v", got, tt.reached)
			}
			if got := tally.FencedAt(exp); got != tt.past {
				t.Errorf("FencedAt = %v, want %v", got, tt.past)
			}
		})
	}
}
