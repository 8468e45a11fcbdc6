package manifests

import (
	"bufio"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"

	"github.com/rapport-dev/rapport/test/utils"
)

// TestManagerRBACIsReviewed keeps the manager's permissions least-privilege:
// every (group, resource, verb) granted must be in the reviewed list, and
// every reviewed line must still be granted (so the list does not rot).
func TestManagerRBACIsReviewed(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(utils.RepoRoot(), "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.ClusterRole
	if err := yaml.UnmarshalStrict(data, &role); err != nil {
		t.Fatal(err)
	}
	granted := map[string]bool{}
	for _, r := range role.Rules {
		if len(r.NonResourceURLs) > 0 || len(r.ResourceNames) > 0 {
			t.Errorf("rule %+v uses nonResourceURLs or resourceNames: review it", r)
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					if g == "*" || res == "*" || v == "*" {
						t.Errorf("wildcard permission %s/%s %s: list exactly what the manager needs", g, res, v)
					}
					granted[g+"/"+res+" "+v] = true
				}
			}
		}
	}
	f, err := os.Open(filepath.Join("testdata", "reviewed-rbac.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	reviewed := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		reviewed[fields[0]+" "+fields[1]] = true
	}
	var added, gone []string
	for p := range granted {
		if !reviewed[p] {
			added = append(added, p)
		}
	}
	for p := range reviewed {
		if !granted[p] {
			gone = append(gone, p)
		}
	}
	sort.Strings(added)
	sort.Strings(gone)
	for _, p := range added {
		t.Errorf("new permission %q in config/rbac/role.yaml: review it for least privilege and add it, with why, to test/manifests/testdata/reviewed-rbac.txt", p)
	}
	for _, p := range gone {
		t.Errorf("reviewed permission %q is no longer granted: remove it from test/manifests/testdata/reviewed-rbac.txt", p)
	}
}
