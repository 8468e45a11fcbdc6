package replicas

import (
	"fmt"
	"testing"
)

func TestSplit(t *testing.T) {
	tests := []struct {
		name    string
		total   int32
		weights []int32
		want    []int32
	}{
		{"all to control", 10, []int32{100, 0}, []int32{10, 0}},
		{"5% still gets one pod", 10, []int32{95, 5}, []int32{9, 1}},
		{"a tie of remainders goes to the control (7.5/2.5)", 10, []int32{75, 25}, []int32{8, 2}},
		{"30% of 10", 10, []int32{70, 30}, []int32{7, 3}},
		{"50/50", 10, []int32{50, 50}, []int32{5, 5}},
		{"three variants at 25%", 10, []int32{50, 25, 25}, []int32{5, 3, 2}},
		{"minimum one pod each with a tiny total", 3, []int32{90, 5, 5}, []int32{1, 1, 1}},
		{"promoted variant takes all", 10, []int32{0, 100}, []int32{0, 10}},
		{"rolled-back variant gets none", 10, []int32{95, 0, 5}, []int32{9, 0, 1}},
		{"odd total", 7, []int32{50, 50}, []int32{4, 3}},
		{"nothing to share", 0, []int32{100, 0}, []int32{0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Split(tt.total, tt.weights)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("Split(%d, %v) = %v, want %v", tt.total, tt.weights, got, tt.want)
			}
		})
	}
}

func TestSplitAlwaysSumsToTotal(t *testing.T) {
	for total := int32(2); total <= 50; total++ {
		for w := int32(1); w <= 50; w++ {
			weights := []int32{100 - 2*w, w, w}
			got := Split(total, weights)
			var sum int32
			for i, n := range got {
				sum += n
				if weights[i] > 0 && n < 1 && total >= 3 {
					t.Fatalf("Split(%d, %v) = %v gives a positive weight no pod", total, weights, got)
				}
			}
			if total >= 3 && sum != total {
				t.Fatalf("Split(%d, %v) = %v sums to %d", total, weights, got, sum)
			}
		}
	}
}
