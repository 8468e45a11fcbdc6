package argocd

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/rapport-dev/rapport/test/utils"
)

var update = flag.Bool("update", false, "rewrite config/argocd/argocd-cm.yaml")

// The ConfigMap patch users apply carries exactly the scripts the tests run.
func TestConfigMapCarriesTheScripts(t *testing.T) {
	want, err := ConfigMap()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(utils.RepoRoot(), "config", "argocd", "argocd-cm.yaml")
	if *update {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatalf("%s is out of date with config/argocd/*.lua: run go test ./test/argocd -update", path)
	}

	// Read back as Argo CD reads it.
	var cm struct {
		Data map[string]string `json:"data"`
	}
	if err := yaml.Unmarshal(got, &cm); err != nil {
		t.Fatal(err)
	}
	var actions actionsConfig
	if err := yaml.Unmarshal([]byte(cm.Data[ActionsKey]), &actions); err != nil {
		t.Fatalf("%s: %v", ActionsKey, err)
	}
	if len(actions.Definitions) != len(Actions) || actions.DiscoveryLua == "" || cm.Data[HealthKey] == "" {
		t.Fatalf("argocd-cm lacks scripts: %d actions, discovery %d bytes, health %d bytes",
			len(actions.Definitions), len(actions.DiscoveryLua), len(cm.Data[HealthKey]))
	}
}

// The harness offers what Argo CD offers to argocd-cm scripts, and no more.
func TestSandboxIsArgoCDs(t *testing.T) {
	obj := map[string]any{"metadata": map[string]any{"name": "x"}, "spec": map[string]any{"collector": map[string]any{}}}
	for _, tc := range []struct {
		name, script, err string
	}{
		{"string library is absent", `return {status = string.upper("healthy")}`, "with key 'upper'"},
		{"global os is absent", `return {status = os.date("!%Y")}`, "with key 'date'"},
		{"io is absent", `io.write("x") return {}`, "with key 'write'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := RunHealth(tc.script, obj); err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("want an error about %s, got %v", tc.err, err)
			}
		})
	}
	out, err := RunAction(`local os = require("os") obj.metadata.name = os.date("!%Y-%m-%dT%H:%M:%SZ") return obj`, obj)
	if err != nil {
		t.Fatal(err)
	}
	if name, _ := out["metadata"].(map[string]any)["name"].(string); len(name) != len("2006-01-02T15:04:05Z") {
		t.Fatalf("os.date from require(\"os\"): got %q", name)
	}
	if c := out["spec"].(map[string]any)["collector"]; c == nil {
		t.Fatal("an empty object of the input must come back as an empty object")
	} else if _, ok := c.(map[string]any); !ok {
		t.Fatalf("empty object came back as %T", c)
	}
}

// Objects the envtest suite does not reach (internal/controller/gitops_test.go
// runs the scripts against experiments the controller drove).
func TestScriptsOnEdgeObjects(t *testing.T) {
	health, err := Script("health.lua")
	if err != nil {
		t.Fatal(err)
	}
	discovery, err := Script("actions/discovery.lua")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		obj     map[string]any
		health  string
		enabled string
	}{
		{"just created, no status", map[string]any{"metadata": map[string]any{"generation": int64(1)}, "spec": map[string]any{}}, "Progressing", "pause,abort"},
		{"paused before it started", map[string]any{"metadata": map[string]any{"generation": int64(1)}, "spec": map[string]any{"paused": true},
			"status": map[string]any{"observedGeneration": int64(1), "phase": "Pending", "conditions": []any{}}}, "Progressing", "resume,abort"},
		{"held by spec.paused within the Progressing phase", map[string]any{"metadata": map[string]any{"generation": int64(3)}, "spec": map[string]any{"paused": true},
			"status": map[string]any{"observedGeneration": int64(3), "phase": "Progressing", "waiting": "Paused", "conditions": []any{
				map[string]any{"type": "Ready", "status": "True", "reason": "Paused", "message": "paused at step 2/3"}}}}, "Suspended", "resume,promote,abort"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := RunHealth(health, tc.obj)
			if err != nil {
				t.Fatal(err)
			}
			if h.Status != tc.health || h.Message == "" {
				t.Fatalf("health: got %+v, want %s with a message", h, tc.health)
			}
			actions, err := RunDiscovery(discovery, tc.obj)
			if err != nil {
				t.Fatal(err)
			}
			var enabled []string
			for _, a := range Actions {
				if act, ok := actions[a]; !ok {
					t.Fatalf("action %s not listed", a)
				} else if !act.Disabled {
					enabled = append(enabled, a)
				}
			}
			if got := strings.Join(enabled, ","); got != tc.enabled {
				t.Fatalf("enabled actions: got %s, want %s", got, tc.enabled)
			}
		})
	}
}
