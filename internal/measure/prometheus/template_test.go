package prometheus

import (
	"strings"
	"testing"
	"time"
)

func TestFormatWindow(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{-time.Minute, "1s"},
		{0, "1s"},
		{500 * time.Millisecond, "1s"},
		{time.Second, "1s"},
		{1500 * time.Millisecond, "1500ms"},
		{time.Hour + 2*time.Minute + 5*time.Second, "3725s"},
		{time.Hour + 2*time.Minute + 5*time.Second + time.Millisecond, "3725001ms"},
		{72 * time.Hour, "259200s"},
	} {
		if got := FormatWindow(tc.d); got != tc.want {
			t.Errorf("FormatWindow(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

var goodVars = Vars{Variant: "one-page", Segment: "vip", Namespace: "shop", Experiment: "checkout", Window: time.Hour + 2*time.Minute + 5*time.Second}

func TestRenderAllFields(t *testing.T) {
	got, err := Render(`  x{variant="{{ .Variant }}",segment="{{ .Segment }}",ns="{{ .Namespace }}",exp="{{.Experiment}}"}[{{ .Window }}]`+"\n", goodVars)
	if err != nil {
		t.Fatal(err)
	}
	want := `x{variant="one-page",segment="vip",ns="shop",exp="checkout"}[3725s]`
	if got != want {
		t.Errorf("Render = %q, want %q", got, want)
	}
}

func TestRenderErrors(t *testing.T) {
	for _, tc := range []struct {
		name, tmpl string
		want       []string
	}{
		{"missing key", `x{variant="{{ .Varaint }}"}`, []string{`map has no entry for key "Varaint"`, "{{ .Variant }}"}},
		{"bad syntax", `x{variant="{{ .Variant }"}`, []string{"parse query template"}},
		{"empty template", "  \n", []string{"query template is empty"}},
		{"renders empty", `{{ if false }}x{{ end }}`, []string{"renders an empty query"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Render(tc.tmpl, goodVars)
			if err == nil {
				t.Fatal("Render succeeded, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestRenderRefusesUnsafeValues(t *testing.T) {
	for _, bad := range []string{
		`a"b`, `a\b`, "a\nb", `a}b`, `a{b`, `a'b`, "a`b", "a b", `a=~".*`, "a,b", "a|b", "é", "a\x00b", "",
		strings.Repeat("a", 254),
	} {
		for _, field := range []string{"variant", "segment", "namespace", "experiment"} {
			v := goodVars
			switch field {
			case "variant":
				v.Variant = bad
			case "segment":
				v.Segment = bad
			case "namespace":
				v.Namespace = bad
			case "experiment":
				v.Experiment = bad
			}
			// The template does not even use the field: a bad value is refused anyway.
			_, err := Render(`x`, v)
			if err == nil {
				t.Errorf("%s %q accepted, want an error", field, bad)
				continue
			}
			if !strings.HasPrefix(err.Error(), field+" ") {
				t.Errorf("%s %q: error %q does not name the field", field, bad, err)
			}
		}
	}
	ok := goodVars
	ok.Experiment = "checkout.v2_A-1"
	if _, err := Render(`x`, ok); err != nil {
		t.Errorf("safe value refused: %v", err)
	}
}

func TestValidate(t *testing.T) {
	good := []string{
		`sum by (score) (increase(shop_csat_responses_total{variant="{{ .Variant }}",segment="{{ .Segment }}",namespace="{{ .Namespace }}",experiment="{{ .Experiment }}"}[{{ .Window }}]))`,
		`sum by (score) (shop_csat_responses_total{variant="{{ .Variant }}"})`,
		`max(rate(http_requests_total{code=~"5..",variant="{{ .Variant }}"}[5m])) / max(rate(http_requests_total{variant="{{ .Variant }}"}[5m]))`,
	}
	for _, q := range good {
		if err := Validate(q); err != nil {
			t.Errorf("Validate(%q) = %v, want nil", q, err)
		}
	}
	for _, tc := range []struct{ tmpl, want string }{
		{`sum by (score) (x{variant="{{ .Variant }}"}`, "not valid PromQL"},
		{`sum by (score) (x{variant="{{ .Variant }}"}[{{ .Window }}]`, "not valid PromQL"},
		{`rate(x{variant="{{ .Variant }}"})`, "not valid PromQL"},
		{`x{variant="{{ .Nope }}"}`, `no entry for key "Nope"`},
		{`x{variant="{{ .Variant }"}`, "parse query template"},
		{``, "empty"},
	} {
		err := Validate(tc.tmpl)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%q) = %v, want an error containing %q", tc.tmpl, err, tc.want)
		}
	}
}
