package manifests

import (
	"encoding/json"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// promRules returns the alerts of a rendered PrometheusRule by name.
func promRules(t *testing.T, r rendered) map[string]map[string]any {
	t.Helper()
	pr := r.ofKind("PrometheusRule")
	if len(pr) != 1 {
		t.Fatalf("%d PrometheusRules rendered, want 1", len(pr))
	}
	groups, _, _ := unstructured.NestedSlice(pr[0].Object, "spec", "groups")
	out := map[string]map[string]any{}
	for _, g := range groups {
		for _, rule := range g.(map[string]any)["rules"].([]any) {
			m := rule.(map[string]any)
			out[m["alert"].(string)] = m
		}
	}
	return out
}

// TestChartAlertValues: prometheusRule.alerts changes thresholds, for,
// severity, labels and leaves alerts out; the changed expressions still
// parse and select real series; names and thresholds it cannot apply fail
// the render with the fix.
func TestChartAlertValues(t *testing.T) {
	defaults := promRules(t, mustTemplate(t, "prometheusRule.enabled=true"))
	r := mustTemplate(t, "prometheusRule.enabled=true",
		"prometheusRule.alerts.RapportRollbackLatencyHigh.threshold=2.5",
		"prometheusRule.alerts.RapportCollectorRejectingRequests.threshold=0.25",
		"prometheusRule.alerts.RapportCollectorRejectingRequests.for=30m",
		"prometheusRule.alerts.RapportReconcileErrors.severity=critical",
		"prometheusRule.alerts.RapportReconcileErrors.labels.team=platform",
		"prometheusRule.alerts.RapportCollectorCommitSlow.enabled=false",
	)
	rules := promRules(t, r)
	if _, ok := rules["RapportCollectorCommitSlow"]; ok || len(rules) != len(defaults)-1 {
		t.Errorf("enabled=false left the alert in (%d alerts, defaults %d)", len(rules), len(defaults))
	}
	lat := rules["RapportRollbackLatencyHigh"]["expr"].(string)
	if !strings.HasSuffix(lat, ") > 2.5\n") || strings.TrimSuffix(lat, "2.5\n") != strings.TrimSuffix(defaults["RapportRollbackLatencyHigh"]["expr"].(string), "1\n") {
		t.Errorf("threshold 2.5: %q", lat)
	}
	rej := rules["RapportCollectorRejectingRequests"]
	if !strings.HasSuffix(rej["expr"].(string), "> 0.25\n") || rej["for"] != "30m" {
		t.Errorf("RapportCollectorRejectingRequests: for %v, expr %q", rej["for"], rej["expr"])
	}
	labels := rules["RapportReconcileErrors"]["labels"].(map[string]any)
	if labels["severity"] != "critical" || labels["team"] != "platform" {
		t.Errorf("severity and labels: %v", labels)
	}
	for name, rule := range rules {
		if _, errs := checkPromQL(rule["expr"].(string)); len(errs) > 0 {
			t.Errorf("%s: %v", name, errs)
		}
	}

	for _, tc := range []struct {
		set, want string
	}{
		{"prometheusRule.alerts.RapportRollbackLatencyTooHigh.threshold=2", "prometheusRule.alerts.RapportRollbackLatencyTooHigh: Rapport has no such alert; its alerts are RapportCollectorCommitSlow"},
		{"prometheusRule.alerts.RapportExperimentRolledBack.threshold=2", `prometheusRule.alerts.RapportExperimentRolledBack.threshold: the alert's expression does not end with a comparison`},
		{"prometheusRule.alerts.RapportRollbackLatencyHigh.threshold=fast", "threshold"},
		{"prometheusRule.alerts.RapportRollbackLatencyHigh.severity=page", "severity"},
	} {
		_, err := helmTemplate(t, "prometheusRule.enabled=true", tc.set)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("--set %s: %v, want an error with %q", tc.set, err, tc.want)
		}
	}
}

// TestChartDashboardValues: grafanaDashboard.options changes the dashboard;
// without options it is the file unchanged (TestChartSharedFiles).
func TestChartDashboardValues(t *testing.T) {
	r := mustTemplate(t, "grafanaDashboard.enabled=true",
		"grafanaDashboard.options.title=Checkout CX", "grafanaDashboard.options.uid=rapport-prod",
		"grafanaDashboard.options.refresh=1m", "grafanaDashboard.options.from=now-24h",
		"grafanaDashboard.options.maxDrop=5", "grafanaDashboard.options.tags={team-checkout}")
	cm := typed(t, r.ofKind("ConfigMap")[0], &corev1.ConfigMap{})
	var d struct {
		Title, UID, Refresh string
		Time                struct{ From string }
		Tags                []string
		Templating          struct {
			List []struct {
				Name    string
				Query   any
				Current map[string]any
			}
		}
		Panels []any
	}
	if err := json.Unmarshal([]byte(cm.Data["rapport-dashboard.json"]), &d); err != nil {
		t.Fatal(err)
	}
	if d.Title != "Checkout CX" || d.UID != "rapport-prod" || d.Refresh != "1m" || d.Time.From != "now-24h" ||
		strings.Join(d.Tags, ",") != "rapport,kubernetes,experiments,team-checkout" || len(d.Panels) == 0 {
		t.Errorf("dashboard: title %q uid %q refresh %q from %q tags %v, %d panels", d.Title, d.UID, d.Refresh, d.Time.From, d.Tags, len(d.Panels))
	}
	found := false
	for _, v := range d.Templating.List {
		if v.Name == "max_drop" {
			found = v.Query == "5" && v.Current["value"] == "5"
		}
	}
	if !found {
		t.Errorf("max_drop is not 5: %+v", d.Templating.List)
	}
}

// TestChartNotificationValues: the notifier's flags, and the global
// ConfigMap and Secret when values carry them.
func TestChartNotificationValues(t *testing.T) {
	d := mustTemplate(t)
	args := argMap(deploymentArgs(t, d))
	if args["notifications-namespace"] != releaseNS || args["notifications-max-age"] != "6h" || args["notifications-timeout"] != "30s" {
		t.Errorf("notification args: %v", args)
	}
	if len(d.ofKind("ConfigMap")) != 0 || len(d.ofKind("Secret")) != 0 {
		t.Error("a notification ConfigMap or Secret is rendered without values")
	}
	off := argMap(deploymentArgs(t, mustTemplate(t, "notifications.enabled=false")))
	if off["notifications"] != "false" {
		t.Errorf("notifications.enabled=false: %v", off)
	}
	r := mustTemplate(t, "notifications.config.service\\.slack=token: $slack-token",
		"notifications.secret.create=true", "notifications.secret.items.slack-token=xoxb-1")
	cm := typed(t, r.find("ConfigMap", "rapport-notifications-cm"), &corev1.ConfigMap{})
	s := typed(t, r.find("Secret", "rapport-notifications-secret"), &corev1.Secret{})
	if cm.Namespace != releaseNS || cm.Data["service.slack"] != "token: $slack-token" || s.StringData["slack-token"] != "xoxb-1" {
		t.Errorf("ConfigMap %v, Secret %v", cm.Data, s.StringData)
	}
}

func deploymentArgs(t *testing.T, r rendered) []string {
	t.Helper()
	o := r.find("Deployment", "rapport-controller-manager")
	cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
	var args []string
	for _, a := range cs[0].(map[string]any)["args"].([]any) {
		args = append(args, a.(string))
	}
	return args
}
