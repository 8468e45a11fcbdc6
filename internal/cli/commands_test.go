package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/rapport-dev/rapport/internal/analysis"
)

func testStreams(out, errOut io.Writer) genericiooptions.IOStreams {
	if out == nil {
		out = io.Discard
	}
	if errOut == nil {
		errOut = io.Discard
	}
	return genericiooptions.IOStreams{In: strings.NewReader(""), Out: out, ErrOut: errOut}
}

// result is what one in-process run of kubectl-cx printed and returned.
type result struct {
	out, err string
	code     int
}

// execute runs kubectl-cx in-process, as a script would: stdout is not a
// terminal (no colour, no redraw).
func execute(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer, args ...string) int {
	streams := testStreams(stdout, stderr)
	if stdin != nil {
		streams.In = stdin
	}
	o := NewOptions(streams)
	o.Getenv = func(string) string { return "" }
	o.IsTerminal = func(io.Writer) bool { return false }
	return Run(ctx, o, args)
}

func runCLI(t *testing.T, args ...string) result {
	t.Helper()
	return runCLIStdin(t, nil, args...)
}

func runCLIStdin(t *testing.T, stdin io.Reader, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := execute(context.Background(), stdin, &out, &errOut, args...)
	return result{out: out.String(), err: errOut.String(), code: code}
}

func (r result) expect(t *testing.T, code int) result {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.out, r.err)
	}
	return r
}

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"bogus"}, ExitUsage, `unknown command "bogus"`},
		{[]string{"list", "extra"}, ExitUsage, "takes no arguments"},
		{[]string{"list", "--bogus"}, ExitUsage, "unknown flag: --bogus"},
		{[]string{"list", "-o", "table"}, ExitUsage, `--output "table" is not supported; use one of json, yaml, kyaml, name,`},
		{[]string{"list", "-o", "jsonpath={.items[0"}, ExitUsage, "error parsing jsonpath {.items[0, unterminated array"},
		{[]string{"status", "x", "--timeout", "-1s"}, ExitUsage, "--timeout must be 0 (no limit) or more"},
		{[]string{"analyze", "-o", "yaml"}, ExitUsage, `--output "yaml" is not supported here; use one of "" (default), json`},
		{[]string{"version", "-o", "wide"}, ExitUsage, `--output "wide" is not supported here`},
		{[]string{"status"}, ExitUsage, "needs exactly one experiment NAME"},
		{[]string{"status", "a", "b"}, ExitUsage, "needs exactly one experiment NAME"},
		{[]string{"status", "x", "--watch", "-o", "json"}, ExitUsage, "--watch cannot be combined"},
		{[]string{"promote"}, ExitUsage, "needs exactly one experiment NAME"},
		{[]string{"report", "x", "-o", "yaml"}, ExitUsage, `--output "yaml" is not supported`},
		{[]string{"analyze", "--max-drop", "abc"}, ExitUsage, "invalid argument"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := runCLI(t, tc.args...).expect(t, tc.code)
			if !strings.Contains(r.err, tc.err) || !strings.Contains(r.err, "--help' for usage") {
				t.Errorf("stderr %q lacks %q and the usage hint", r.err, tc.err)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	r := runCLI(t, "--help").expect(t, ExitOK)
	for _, want := range []string{"kubectl cx [command]", "Exit codes:", "3  experiment not found", "4  status --wait: the run ended RolledBack",
		"6  status --wait: the timeout passed", "NO_COLOR",
		"list", "status", "pause", "resume", "promote", "abort", "retry", "report", "dashboard", "analyze", "version", "completion", "--kubeconfig", "--namespace"} {
		if !strings.Contains(r.out, want) {
			t.Errorf("kubectl cx --help lacks %q", want)
		}
	}
	if r := runCLI(t).expect(t, ExitOK); !strings.Contains(r.out, "Exit codes:") {
		t.Error("kubectl cx without a command does not print the help")
	}
	for _, cmd := range []string{"list", "status", "pause", "resume", "promote", "abort", "retry", "report", "dashboard", "analyze", "version"} {
		r := runCLI(t, cmd, "--help").expect(t, ExitOK)
		if !strings.Contains(r.out, "Examples:") || !strings.Contains(r.out, "kubectl cx "+cmd) {
			t.Errorf("kubectl cx %s --help has no examples:\n%s", cmd, r.out)
		}
	}
}

func TestUnreachableCluster(t *testing.T) {
	r := runCLI(t, "list", "--server", "http://127.0.0.1:1", "--request-timeout", "2s").expect(t, ExitError)
	if !strings.Contains(r.err, "Error:") {
		t.Errorf("stderr: %q", r.err)
	}
}

func TestAnalyzeGolden(t *testing.T) {
	for _, tc := range []struct {
		golden string
		args   []string
	}{
		// The example of the docs: 100 responses per arm, too few to decide a 6-point drop.
		{"analyze-csat.golden", []string{"--metric", "CSAT", "--scale-max", "5", "--control", "3,4,10,40,43", "--variant", "one-page=5,6,12,40,37"}},
		// 6,000 responses per arm: one variant cleared, one rolled back.
		{"analyze-two-variants.golden", []string{"--control", "180,240,600,2400,2580",
			"--variant", "one-page=192,228,600,2460,2520", "--variant", "express=360,480,960,2100,2100"}},
		{"analyze-nps-minimum.golden", []string{"--metric", "nps", "--max-drop", "5", "--minimum", "10", "--confidence", "99",
			"--control-name", "today", "--control", "10,2,3,5,5,10,15,40,60,150,200", "--variant", "new-flow=20,5,5,8,8,14,20,40,60,120,150"}},
		{"analyze-plan.golden", []string{"--plan", "--baseline", "85", "--drop", "5", "--weights", "5,25,50"}},
		{"analyze-plan-nps.golden", []string{"--plan", "--metric", "NPS", "--baseline", "30", "--max-drop", "5", "--drop", "0,2,10,15", "--power", "0.9"}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			r := runCLI(t, append([]string{"analyze"}, tc.args...)...).expect(t, ExitOK)
			golden(t, tc.golden, []byte(r.out))
		})
	}
}

// TestAnalyzeMatchesEngine checks analyze against the decision engine itself.
func TestAnalyzeMatchesEngine(t *testing.T) {
	cfg := analysis.Config{Metric: analysis.CSAT, ScaleMin: 1, ScaleMax: 5, SatisfiedAtOrAbove: 4, MaxDrop: 3, Confidence: 0.95, MinResponses: 100, Segments: 1}
	seg := analysis.Segment{Control: "control", Variants: []string{"one-page", "express"}, Epochs: []analysis.Epoch{{Number: 1, Counts: analysis.Counts{
		"control": {180, 240, 600, 2400, 2580}, "one-page": {192, 228, 600, 2460, 2520}, "express": {360, 480, 960, 2100, 2100}}}}}
	res, err := analysis.Evaluate(cfg, seg)
	if err != nil {
		t.Fatal(err)
	}
	as := res.Variants
	if as[0].Verdict != analysis.NonInferior || as[1].Verdict != analysis.Inferior {
		t.Fatalf("fixture verdicts %s, %s; want NonInferior, Inferior", as[0].Verdict, as[1].Verdict)
	}
	r := runCLI(t, "analyze", "--control", "180,240,600,2400,2580",
		"--variant", "one-page=192,228,600,2460,2520", "--variant", "express=360,480,960,2100,2100").expect(t, ExitOK)
	for _, a := range as {
		if !strings.Contains(r.out, a.Variant+": "+a.Explanation+"\n") {
			t.Errorf("analyze lacks the engine's explanation for %s: %s", a.Variant, a.Explanation)
		}
	}

	for _, w := range []int32{5, 50} {
		p, err := analysis.PlanComparison(cfg, analysis.PlanInput{Baseline: 85, Drop: 5, VariantWeight: w, ControlWeight: 100 - w})
		if err != nil {
			t.Fatal(err)
		}
		r = runCLI(t, "analyze", "--plan", "--baseline", "85", "--drop", "5", "--weights", "5,50").expect(t, ExitOK)
		want := thousands(p.Median.Segment) + " / " + thousands(p.P90.Segment)
		if !strings.Contains(r.out, want) || !strings.Contains(r.out, thousands(p.FixedHorizon)) {
			t.Errorf("plan at %d%% lacks %s (PlanComparison) or %d (fixed horizon):\n%s", w, want, p.FixedHorizon, r.out)
		}
	}
}

func TestAnalyzeFile(t *testing.T) {
	doc := `{
  "metric": "CSAT", "scaleMax": 5, "maxDrop": 3, "confidence": 95, "minResponses": 100,
  "control":  {"name": "control",  "counts": [180, 240, 600, 2400, 2580]},
  "variants": [{"name": "one-page", "counts": [192, 228, 600, 2460, 2520]},
               {"name": "express",  "counts": [360, 480, 960, 2100, 2100]}]
}`
	path := filepath.Join(t.TempDir(), "counts.json")
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	fromFlags := runCLI(t, "analyze", "--control", "180,240,600,2400,2580",
		"--variant", "one-page=192,228,600,2460,2520", "--variant", "express=360,480,960,2100,2100").expect(t, ExitOK)
	fromFile := runCLI(t, "analyze", "--file", path).expect(t, ExitOK)
	if fromFile.out != fromFlags.out {
		t.Errorf("--file and flags disagree:\n%s\n---\n%s", fromFile.out, fromFlags.out)
	}
	fromStdin := runCLIStdin(t, strings.NewReader(doc), "analyze", "-f", "-").expect(t, ExitOK)
	if fromStdin.out != fromFlags.out {
		t.Errorf("--file - and flags disagree:\n%s", fromStdin.out)
	}
	// A flag wins over the file.
	stricter := runCLI(t, "analyze", "--file", path, "--max-drop", "1").expect(t, ExitOK)
	if !strings.Contains(stricter.out, "max drop 1 points") || strings.Contains(stricter.out, "max drop 3") {
		t.Errorf("--max-drop did not override the file:\n%s", stricter.out)
	}
}

func TestAnalyzeErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"control": {"name": "c", "counts": [1,2,3,4,5]}, "varients": []}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"--control", "1,2,3"}, ExitUsage, "3 counts given, want 5"},
		{[]string{"--control", "1,2,3,4,x", "--variant", "a=1,2,3,4,5"}, ExitUsage, `count "x" for score 5`},
		{[]string{"--control", "1,2,3,4,5"}, ExitUsage, "at least one variant"},
		{[]string{"--control", "1,2,3,4,5", "--variant", "1,2,3,4,5"}, ExitUsage, "want NAME=COUNTS"},
		{[]string{"--variant", "a=1,2,3,4,5"}, ExitUsage, "give the control's counts"},
		{[]string{"--metric", "CES", "--control", "1"}, ExitUsage, "--metric must be CSAT or NPS"},
		{[]string{"--metric", "NPS", "--scale-max", "5"}, ExitUsage, "NPS is always scored 0..10"},
		{[]string{"--scale-max", "12"}, ExitUsage, "ScaleMax"},
		{[]string{"--confidence", "0.95"}, ExitUsage, "percentage"},
		{[]string{"--plan"}, ExitUsage, "--plan needs --baseline"},
		{[]string{"--plan", "--baseline", "85", "--drop", "3"}, ExitUsage, "drop equal to MaxDrop"},
		{[]string{"--plan", "--baseline", "85", "--control", "1,2,3,4,5"}, ExitUsage, "--plan takes no counts"},
		{[]string{"--baseline", "85"}, ExitUsage, "--baseline applies to --plan only"},
		{[]string{"--file", bad}, ExitUsage, `unknown field "varients"`},
		{[]string{"--file", filepath.Join(dir, "missing.json")}, ExitError, "no such file"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := runCLI(t, append([]string{"analyze"}, tc.args...)...).expect(t, tc.code)
			if !strings.Contains(r.err, tc.err) {
				t.Errorf("stderr %q lacks %q", r.err, tc.err)
			}
		})
	}
}

func TestNewToken(t *testing.T) {
	tok := newToken(fixedNow, "")
	if tok != "2026-05-04T10:00:00Z" {
		t.Errorf("token %q", tok)
	}
	if next := newToken(fixedNow, tok); next == tok || next != "2026-05-04T10:00:00.000000001Z" {
		t.Errorf("a second token at the same instant is %q", next)
	}
}

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, ExitOK},
		{usageErrorf("x"), ExitUsage},
		{refusedErrorf("x"), ExitError},
		{notFoundErrorf("x"), ExitNotFound},
		{&exitError{code: ExitRolledBack, err: io.EOF}, 4},
		{&exitError{code: ExitFailed, err: io.EOF}, 5},
		{&exitError{code: ExitTimeout, err: io.EOF}, 6},
		{io.EOF, ExitError},
	} {
		if got := ExitCode(tc.err); got != tc.want {
			t.Errorf("ExitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

// TestAnalyzeJSON: -o json carries the engine's numbers, typed, and the
// table and the document agree.
func TestAnalyzeJSON(t *testing.T) {
	args := []string{"analyze", "--control", "180,240,600,2400,2580", "--variant", "one-page=192,228,600,2460,2520", "--variant", "express=360,480,960,2100,2100"}
	r := runCLI(t, append(args, "-o", "json")...).expect(t, ExitOK)
	golden(t, "analyze-two-variants.json", []byte(r.out))
	var doc AnalysisDocument
	dec := json.NewDecoder(strings.NewReader(r.out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	cfg := analysis.Config{Metric: analysis.CSAT, ScaleMin: 1, ScaleMax: 5, SatisfiedAtOrAbove: 4, MaxDrop: 3, Confidence: 0.95, MinResponses: 100, Segments: 1}
	res, err := Analyze(cfg, analysis.Arm{Name: "control", Counts: []int64{180, 240, 600, 2400, 2580}},
		[]analysis.Arm{{Name: "one-page", Counts: []int64{192, 228, 600, 2460, 2520}}, {Name: "express", Counts: []int64{360, 480, 960, 2100, 2100}}})
	if err != nil {
		t.Fatal(err)
	}
	as := res.Assessments
	if doc.Kind != AnalysisKind || doc.APIVersion != ReportAPIVersion || doc.Settings.Confidence != 95 || len(doc.Variants) != 2 || doc.Control.Responses != 6000 {
		t.Fatalf("document: %+v", doc)
	}
	for i, a := range as {
		v := doc.Variants[i]
		if v.Name != a.Variant || v.Verdict != string(a.Verdict) || math.Abs(v.Score-a.Score) > 0.0005 || math.Abs(*v.Difference-a.Difference) > 0.0005 ||
			math.Abs(v.DifferenceInterval.Lower-a.DifferenceInterval.Lower) > 0.0005 || v.Explanation != a.Explanation {
			t.Errorf("variant %d: %+v, engine %+v", i, v, a)
		}
	}

	r = runCLI(t, "analyze", "--plan", "--baseline", "85", "--drop", "5", "-o", "json").expect(t, ExitOK)
	golden(t, "analyze-plan.json", []byte(r.out))
	var plan PlanDocument
	if err := json.Unmarshal([]byte(r.out), &plan); err != nil {
		t.Fatal(err)
	}
	want, err := Plan(cfg, 85, []float64{5}, []int32{50}, 1, 35, 0.8)
	if err != nil {
		t.Fatal(err)
	}
	need := want.Rows[0].Median.Segment
	if plan.Kind != PlanKind || len(plan.Rows) != 1 || plan.Rows[0].Median == nil || plan.Rows[0].Median.Segment != need || plan.Rows[0].Weight != 50 ||
		plan.Rows[0].VariantScore != 80 || plan.Power != 80 {
		t.Errorf("plan: %+v (want a median of %d responses of the segment)", plan, need)
	}
}

func TestVersionClient(t *testing.T) {
	r := runCLI(t, "version", "--client").expect(t, ExitOK)
	if !strings.HasPrefix(r.out, "Client Version: ") || strings.Contains(r.out, "Kubernetes") {
		t.Errorf("version --client:\n%s", r.out)
	}
	r = runCLI(t, "version", "--client", "-o", "json").expect(t, ExitOK)
	var v VersionInfo
	if err := json.Unmarshal([]byte(r.out), &v); err != nil || v.ClientVersion.GoVersion == "" || v.ClientVersion.Platform == "" || v.ServerVersion != nil {
		t.Errorf("version -o json: %v %+v", err, v)
	}
	version = "v9.9.9"
	defer func() { version = "" }()
	if r := runCLI(t, "version", "--client").expect(t, ExitOK); !strings.HasPrefix(r.out, "Client Version: v9.9.9") {
		t.Errorf("the link-time version is not shown: %s", r.out)
	}
}

func TestCompletionScripts(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		r := runCLI(t, "completion", shell).expect(t, ExitOK)
		if !strings.Contains(r.out, "kubectl-cx") {
			t.Errorf("completion %s does not complete kubectl-cx", shell)
		}
	}
	if r := runCLI(t, "completion", "--help").expect(t, ExitOK); !strings.Contains(r.out, "kubectl_complete-cx") {
		t.Error("completion --help does not say how to hook into kubectl")
	}
	// Commands and -o values complete without a cluster.
	r := runCLI(t, "__complete", "sta").expect(t, ExitOK)
	if !strings.Contains(r.out, "status") {
		t.Errorf("__complete sta: %s", r.out)
	}
	r = runCLI(t, "__complete", "list", "-o", "j").expect(t, ExitOK)
	if !strings.Contains(r.out, "json") || !strings.Contains(r.out, "jsonpath") {
		t.Errorf("__complete list -o j: %s", r.out)
	}
}
