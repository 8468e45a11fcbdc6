package manifests

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

const (
	chartDir     = "charts/rapport"
	releaseName  = "rapport"
	releaseNS    = "rapport-system"
	tlsSecret    = "rapport-collector-tls"
	monitoringV1 = "monitoring.coreos.com/v1"
	// certManagerV1 is cert-manager's API (the metrics certificate).
	certManagerV1 = "cert-manager.io/v1"
)

// allFeatures turns on every optional object of the chart.
var allFeatures = []string{
	"serviceMonitor.enabled=true", "prometheusRule.enabled=true", "grafanaDashboard.enabled=true",
	"collector.tls.secretName=" + tlsSecret, "metrics.tls.certManager.enabled=true",
}

// rendered is one `helm template` output.
type rendered struct {
	objs []*unstructured.Unstructured
	raw  []byte
}

// find returns the rendered object of a kind and name, or nil.
func (r rendered) find(kind, name string) *unstructured.Unstructured {
	for _, o := range r.objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

func (r rendered) ofKind(kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range r.objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

var (
	renderMu    sync.Mutex
	renderCache = map[string]rendered{}
)

// helmTemplate renders the chart as release "rapport" in rapport-system with
// the given --set values (cached per value set).
func helmTemplate(t *testing.T, sets ...string) (rendered, error) {
	t.Helper()
	helm := helmTool.find(t)
	key := strings.Join(sets, ",")
	renderMu.Lock()
	defer renderMu.Unlock()
	if r, ok := renderCache[key]; ok {
		return r, nil
	}
	args := []string{"template", releaseName, chartDir, "--namespace", releaseNS}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	out, err := run(t, helm, args...)
	if err != nil {
		return rendered{}, err
	}
	r := rendered{objs: decodeDocs(t, out), raw: out}
	renderCache[key] = r
	return r, nil
}

func mustTemplate(t *testing.T, sets ...string) rendered {
	t.Helper()
	r, err := helmTemplate(t, sets...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// typed converts an object into its client-go type, refusing unknown fields.
func typed[T runtime.Object](t *testing.T, u *unstructured.Unstructured, into T) T {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, into, true); err != nil {
		t.Fatalf("%s %s does not decode into %T: %v", u.GetKind(), u.GetName(), into, err)
	}
	return into
}

// managerFlags returns the flags the manager accepts: those cmd/main.go
// defines, controller-runtime's zap flags, and --kubeconfig.
func managerFlags(t *testing.T) map[string]bool {
	t.Helper()
	src := string(readRepoFile(t, "cmd/main.go"))
	flags := map[string]bool{"kubeconfig": true}
	for _, m := range regexp.MustCompile(`flag\.\w+Var\(&\w+,\s*"([\w-]+)"`).FindAllStringSubmatch(src, -1) {
		flags[m[1]] = true
	}
	if len(flags) < 10 {
		t.Fatalf("found only %d flags in cmd/main.go: %v", len(flags), flags)
	}
	fs := flag.NewFlagSet("zap", flag.ContinueOnError)
	(&zap.Options{}).BindFlags(fs)
	fs.VisitAll(func(f *flag.Flag) { flags[f.Name] = true })
	return flags
}

// argMap turns ["--a=1", "--b"] into {a: "1", b: "true"}.
func argMap(args []string) map[string]string {
	out := map[string]string{}
	for _, a := range args {
		name, value, ok := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !ok {
			value = "true"
		}
		out[name] = value
	}
	return out
}

func TestHelmLint(t *testing.T) {
	helm := helmTool.find(t)
	for _, tc := range []struct {
		name string
		sets []string
	}{
		{"defaults", nil},
		{"all features", allFeatures},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"lint", "--strict", chartDir}
			for _, s := range tc.sets {
				args = append(args, "--set", s)
			}
			if out, err := run(t, helm, args...); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		})
	}
}

// TestChartRenders renders the chart with several value sets and checks the
// objects: they decode strictly into Kubernetes types, reference each other
// consistently, and carry the values.
func TestChartRenders(t *testing.T) {
	known := managerFlags(t)
	for _, tc := range []struct {
		name  string
		sets  []string
		check func(t *testing.T, r rendered)
	}{
		{"defaults", nil, func(t *testing.T, r rendered) {
			wantKinds(t, r, map[string]int{
				"ServiceAccount": 1, "ClusterRole": 5, "ClusterRoleBinding": 2, "Role": 1, "RoleBinding": 1,
				"Deployment": 1, "Service": 2, "PodDisruptionBudget": 1,
			})
			d := typed(t, r.find("Deployment", "rapport-controller-manager"), &appsv1.Deployment{})
			c := d.Spec.Template.Spec.Containers[0]
			if c.Image != "rapport-controller:0.1.0" {
				t.Errorf("image %q, want rapport-controller:0.1.0 (the appVersion)", c.Image)
			}
			if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
				t.Errorf("replicas %v, want 2", d.Spec.Replicas)
			}
			wantArgs(t, c.Args, map[string]string{
				"leader-elect": "true", "health-probe-bind-address": ":8081", "metrics-bind-address": ":8443",
				"metrics-secure": "true", "collector-bind-address": ":8082", "collector-rate-limit": "200",
				"collector-rate-burst": "400", "collector-max-batch": "1000", "zap-log-level": "info", "zap-encoder": "json",
			}, "collector-tls-cert-file", "collector-tls-key-file", "enable-http2", "metrics-cert-path",
				"leader-elect-lease-duration", "leader-elect-renew-deadline", "leader-elect-retry-period")
			if len(d.Spec.Template.Spec.Volumes) != 0 {
				t.Errorf("volumes without TLS: %v", d.Spec.Template.Spec.Volumes)
			}
		}},
		{"monitoring, dashboard and collector TLS", allFeatures, func(t *testing.T, r rendered) {
			wantKinds(t, r, map[string]int{"ServiceMonitor": 1, "PrometheusRule": 1, "ConfigMap": 1, "Issuer": 1, "Certificate": 1})
			d := typed(t, r.find("Deployment", "rapport-controller-manager"), &appsv1.Deployment{})
			c := d.Spec.Template.Spec.Containers[0]
			args := argMap(c.Args)
			cert, key := args["collector-tls-cert-file"], args["collector-tls-key-file"]
			if cert == "" || key == "" {
				t.Fatalf("TLS args missing: %v", c.Args)
			}
			var mount *corev1.VolumeMount
			for i := range c.VolumeMounts {
				if strings.HasPrefix(cert, c.VolumeMounts[i].MountPath+"/") && strings.HasPrefix(key, c.VolumeMounts[i].MountPath+"/") {
					mount = &c.VolumeMounts[i]
				}
			}
			if mount == nil || !mount.ReadOnly {
				t.Fatalf("no read-only mount holds %s and %s: %v", cert, key, c.VolumeMounts)
			}
			if filepath.Base(cert) != corev1.TLSCertKey || filepath.Base(key) != corev1.TLSPrivateKeyKey {
				t.Errorf("cert %s and key %s should be the tls.crt and tls.key of a kubernetes.io/tls Secret", cert, key)
			}
			found := false
			for _, v := range d.Spec.Template.Spec.Volumes {
				if v.Name == mount.Name && v.Secret != nil && v.Secret.SecretName == tlsSecret {
					found = true
				}
			}
			if !found {
				t.Errorf("volume %s is not Secret %s: %v", mount.Name, tlsSecret, d.Spec.Template.Spec.Volumes)
			}
			svc := typed(t, r.find("Service", "rapport-collector"), &corev1.Service{})
			if svc.Spec.Ports[0].Name != "https" {
				t.Errorf("collector port named %q with TLS, want https", svc.Spec.Ports[0].Name)
			}
			checkServiceMonitor(t, r, true)
			checkMetricsCertificate(t, r, d, "rapport-metrics-cert")
		}},
		{"metrics certificate from the user's Secret", []string{"metrics.tls.secretName=my-metrics-cert", "serviceMonitor.enabled=true"}, func(t *testing.T, r rendered) {
			wantKinds(t, r, map[string]int{"Issuer": 0, "Certificate": 0})
			d := typed(t, r.find("Deployment", "rapport-controller-manager"), &appsv1.Deployment{})
			checkMetricsCertificate(t, r, d, "my-metrics-cert")
		}},
		{"metrics certificate from the user's issuer", []string{"metrics.tls.certManager.enabled=true", "metrics.tls.certManager.issuerRef.kind=ClusterIssuer", "metrics.tls.certManager.issuerRef.name=corp-ca"}, func(t *testing.T, r rendered) {
			wantKinds(t, r, map[string]int{"Issuer": 0, "Certificate": 1})
			ref, _, _ := unstructured.NestedStringMap(r.ofKind("Certificate")[0].Object, "spec", "issuerRef")
			if ref["kind"] != "ClusterIssuer" || ref["name"] != "corp-ca" {
				t.Errorf("issuerRef %v, want ClusterIssuer corp-ca", ref)
			}
		}},
		{"plain HTTP metrics, no collector, one replica", []string{
			"metrics.secure=false", "collector.enabled=false", "replicaCount=1", "serviceMonitor.enabled=true",
		}, func(t *testing.T, r rendered) {
			wantKinds(t, r, map[string]int{"PodDisruptionBudget": 0, "Service": 1, "ClusterRole": 3, "ClusterRoleBinding": 1})
			if r.find("Service", "rapport-collector") != nil {
				t.Errorf("collector Service rendered with collector.enabled=false")
			}
			d := typed(t, r.find("Deployment", "rapport-controller-manager"), &appsv1.Deployment{})
			wantArgs(t, d.Spec.Template.Spec.Containers[0].Args, map[string]string{
				"collector-bind-address": "0", "metrics-secure": "false",
			}, "collector-rate-limit")
			checkServiceMonitor(t, r, false)
		}},
		{"overrides", []string{
			"fullnameOverride=cx", "image.repository=registry.example.com/rapport",
			"image.digest=sha256:" + strings.Repeat("ab", 32), "logging.level=debug", "extraArgs={--zap-stacktrace-level=panic}",
			"serviceAccount.name=rapport-sa", "rbac.userRoles=false", "collector.rateLimit=0.5", "collector.maxBatch=1000000",
			"leaderElection.leaseDuration=30s", "leaderElection.renewDeadline=20s", "leaderElection.retryPeriod=4s",
		}, func(t *testing.T, r rendered) {
			wantKinds(t, r, map[string]int{"ClusterRole": 3})
			d := typed(t, r.find("Deployment", "cx-controller-manager"), &appsv1.Deployment{})
			c := d.Spec.Template.Spec.Containers[0]
			if want := "registry.example.com/rapport@sha256:" + strings.Repeat("ab", 32); c.Image != want {
				t.Errorf("image %q, want %q", c.Image, want)
			}
			wantArgs(t, c.Args, map[string]string{
				"zap-log-level": "debug", "zap-stacktrace-level": "panic",
				"collector-rate-limit": "0.5", "collector-max-batch": "1000000",
				"leader-elect-lease-duration": "30s", "leader-elect-renew-deadline": "20s", "leader-elect-retry-period": "4s",
			})
			if d.Spec.Template.Spec.ServiceAccountName != "rapport-sa" || r.find("ServiceAccount", "rapport-sa") == nil {
				t.Errorf("serviceAccount.name not used: %q", d.Spec.Template.Spec.ServiceAccountName)
			}
			for _, o := range r.objs {
				if !strings.HasPrefix(o.GetName(), "cx-") && o.GetKind() != "ServiceAccount" {
					t.Errorf("%s %s does not start with the fullnameOverride", o.GetKind(), o.GetName())
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustTemplate(t, tc.sets...)
			checkCommon(t, r, known)
			tc.check(t, r)
		})
	}
}

func wantKinds(t *testing.T, r rendered, want map[string]int) {
	t.Helper()
	for kind, n := range want {
		if got := len(r.ofKind(kind)); got != n {
			names := make([]string, 0, got)
			for _, o := range r.ofKind(kind) {
				names = append(names, o.GetName())
			}
			t.Errorf("%d %s objects %v, want %d", got, kind, names, n)
		}
	}
}

// wantArgs checks argument values, and that the absent ones are absent.
func wantArgs(t *testing.T, args []string, want map[string]string, absent ...string) {
	t.Helper()
	got := argMap(args)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("--%s=%q, want %q (args %v)", k, got[k], v, args)
		}
	}
	for _, k := range absent {
		if _, ok := got[k]; ok {
			t.Errorf("--%s should not be set (args %v)", k, args)
		}
	}
}

// checkCommon holds for every value set: strict decoding, labels,
// namespaces, and the references between the objects.
func checkCommon(t *testing.T, r rendered, knownFlags map[string]bool) {
	t.Helper()
	if len(r.objs) == 0 {
		t.Fatal("the chart rendered nothing")
	}
	roles := map[string]*rbacv1.ClusterRole{}
	nsRoles := map[string]bool{}
	serviceAccounts := map[string]bool{}
	var deploy *appsv1.Deployment
	for _, o := range r.objs {
		where := o.GetKind() + " " + o.GetName()
		l := o.GetLabels()
		if l["app.kubernetes.io/name"] != "rapport" || l["app.kubernetes.io/instance"] != releaseName || l["app.kubernetes.io/managed-by"] != "Helm" {
			t.Errorf("%s: labels %v lack app.kubernetes.io/name, instance or managed-by", where, l)
		}
		if o.GetAPIVersion() == monitoringV1 || o.GetAPIVersion() == certManagerV1 {
			continue // no Go types here; checked field by field
		}
		obj, err := scheme.Scheme.New(o.GroupVersionKind())
		if err != nil {
			t.Errorf("%s: %s is not a known Kubernetes kind: %v", where, o.GroupVersionKind(), err)
			continue
		}
		typed(t, o, obj)
		namespaced := !slices.Contains([]string{"ClusterRole", "ClusterRoleBinding"}, o.GetKind())
		if namespaced && o.GetNamespace() != releaseNS {
			t.Errorf("%s: namespace %q, want the release namespace %s", where, o.GetNamespace(), releaseNS)
		}
		if !namespaced && o.GetNamespace() != "" {
			t.Errorf("%s is cluster-scoped but has namespace %q", where, o.GetNamespace())
		}
		switch v := obj.(type) {
		case *rbacv1.ClusterRole:
			roles[v.Name] = v
		case *rbacv1.Role:
			nsRoles[v.Name] = true
		case *corev1.ServiceAccount:
			serviceAccounts[v.Name] = true
		case *appsv1.Deployment:
			deploy = v
		}
	}
	if deploy == nil {
		t.Fatal("no Deployment rendered")
	}
	pod := deploy.Spec.Template
	sa := pod.Spec.ServiceAccountName
	if !serviceAccounts[sa] {
		t.Errorf("the Deployment runs as ServiceAccount %q, which the chart does not create", sa)
	}
	sel, err := metav1.LabelSelectorAsSelector(deploy.Spec.Selector)
	if err != nil || !sel.Matches(labels.Set(pod.Labels)) {
		t.Errorf("the Deployment's selector %v does not match its pod labels %v", deploy.Spec.Selector, pod.Labels)
	}

	// Bindings bind the manager's ServiceAccount to rendered roles.
	for _, kind := range []string{"ClusterRoleBinding", "RoleBinding"} {
		for _, o := range r.ofKind(kind) {
			var b rbacv1.RoleBinding // same shape as ClusterRoleBinding for these fields
			typed(t, o, &b)
			exists := roles[b.RoleRef.Name] != nil
			if b.RoleRef.Kind == "Role" {
				exists = nsRoles[b.RoleRef.Name]
			}
			if !exists {
				t.Errorf("%s %s refers to %s %s, which is not rendered", kind, b.Name, b.RoleRef.Kind, b.RoleRef.Name)
			}
			if len(b.Subjects) != 1 || b.Subjects[0].Kind != "ServiceAccount" || b.Subjects[0].Name != sa || b.Subjects[0].Namespace != releaseNS {
				t.Errorf("%s %s binds %v, want ServiceAccount %s/%s", kind, b.Name, b.Subjects, releaseNS, sa)
			}
		}
	}

	// The manager container.
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	if c.Name != "manager" || !slices.Equal(c.Command, []string{"/manager"}) {
		t.Errorf("container %q runs %v, want manager running /manager", c.Name, c.Command)
	}
	if pod.Annotations["kubectl.kubernetes.io/default-container"] != "manager" {
		t.Errorf("pod annotations %v lack kubectl.kubernetes.io/default-container: manager", pod.Annotations)
	}
	for _, a := range c.Args {
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "--") || !knownFlags[name] {
			t.Errorf("argument %q is not a flag of the manager (cmd/main.go, zap, kubeconfig)", a)
		}
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	args := argMap(c.Args)
	if want := ":" + fmt.Sprint(ports["health"]); args["health-probe-bind-address"] != want {
		t.Errorf("--health-probe-bind-address=%s, but the health port is %s", args["health-probe-bind-address"], want)
	}
	for probe, path := range map[*corev1.Probe]string{c.LivenessProbe: "/healthz", c.ReadinessProbe: "/readyz"} {
		if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != path || probe.HTTPGet.Port.IntValue() != int(ports["health"]) {
			t.Errorf("probe %+v, want GET %s on the health port %d", probe, path, ports["health"])
		}
	}
	if c.Resources.Limits.Memory().IsZero() || c.Resources.Requests.Cpu().IsZero() {
		t.Errorf("resources %v lack limits or requests", c.Resources)
	}
	checkRestricted(t, pod.Spec.SecurityContext, c.SecurityContext)

	// Services select the pods and reach container ports.
	for _, o := range r.ofKind("Service") {
		svc := typed(t, o, &corev1.Service{})
		if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(pod.Labels)) || len(svc.Spec.Selector) == 0 {
			t.Errorf("Service %s selects %v, which does not match the pods %v", svc.Name, svc.Spec.Selector, pod.Labels)
		}
		for _, p := range svc.Spec.Ports {
			if _, ok := ports[p.TargetPort.String()]; !ok && p.TargetPort.IntValue() == 0 {
				t.Errorf("Service %s port %s targets %s, not a container port %v", svc.Name, p.Name, p.TargetPort.String(), ports)
			}
		}
	}
	if svc := r.find("Service", strings.TrimSuffix(deploy.Name, "-controller-manager")+"-controller-manager-metrics-service"); svc != nil {
		if want := fmt.Sprintf(":%d", ports["metrics"]); args["metrics-bind-address"] != want {
			t.Errorf("--metrics-bind-address=%s, but the metrics port is %s", args["metrics-bind-address"], want)
		}
	}
	for _, o := range r.ofKind("PodDisruptionBudget") {
		sel, _, _ := unstructured.NestedStringMap(o.Object, "spec", "selector", "matchLabels")
		if len(sel) == 0 || !labels.SelectorFromSet(sel).Matches(labels.Set(pod.Labels)) {
			t.Errorf("PodDisruptionBudget %s selects %v, not the manager pods", o.GetName(), sel)
		}
	}
}

// checkRestricted checks the settings the restricted Pod Security Standard
// requires.
func checkRestricted(t *testing.T, pod *corev1.PodSecurityContext, c *corev1.SecurityContext) {
	t.Helper()
	if pod == nil || c == nil {
		t.Fatalf("security contexts missing: pod %v, container %v", pod, c)
	}
	nonRoot := (pod.RunAsNonRoot != nil && *pod.RunAsNonRoot) || (c.RunAsNonRoot != nil && *c.RunAsNonRoot)
	seccomp := (pod.SeccompProfile != nil && pod.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault) ||
		(c.SeccompProfile != nil && c.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault)
	switch {
	case !nonRoot:
		t.Errorf("runAsNonRoot is not set")
	case !seccomp:
		t.Errorf("seccompProfile RuntimeDefault is not set")
	case c.AllowPrivilegeEscalation == nil || *c.AllowPrivilegeEscalation:
		t.Errorf("allowPrivilegeEscalation is not false")
	case c.ReadOnlyRootFilesystem == nil || !*c.ReadOnlyRootFilesystem:
		t.Errorf("readOnlyRootFilesystem is not true")
	case c.Capabilities == nil || !slices.Equal(c.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(c.Capabilities.Add) > 0:
		t.Errorf("capabilities %v, want drop [ALL] and nothing added", c.Capabilities)
	}
}

// checkMetricsCertificate checks that the manager serves metrics with the
// certificate of Secret secret, that a rendered Certificate issues it for the
// metrics Service, and that the ServiceMonitor verifies it.
func checkMetricsCertificate(t *testing.T, r rendered, d *appsv1.Deployment, secret string) {
	t.Helper()
	c := d.Spec.Template.Spec.Containers[0]
	dir := argMap(c.Args)["metrics-cert-path"]
	var mount *corev1.VolumeMount
	for i := range c.VolumeMounts {
		if c.VolumeMounts[i].MountPath == dir {
			mount = &c.VolumeMounts[i]
		}
	}
	if dir == "" || mount == nil || !mount.ReadOnly {
		t.Fatalf("--metrics-cert-path=%q is not a read-only mount: %v", dir, c.VolumeMounts)
	}
	if !slices.ContainsFunc(d.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool {
		return v.Name == mount.Name && v.Secret != nil && v.Secret.SecretName == secret
	}) {
		t.Errorf("volume %s is not Secret %s: %v", mount.Name, secret, d.Spec.Template.Spec.Volumes)
	}
	serverName := "rapport-controller-manager-metrics-service." + releaseNS + ".svc"
	for _, cert := range r.ofKind("Certificate") {
		name, _, _ := unstructured.NestedString(cert.Object, "spec", "secretName")
		dns, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
		if name != secret || !slices.Contains(dns, serverName) {
			t.Errorf("Certificate %s writes Secret %s for %v; want %s for %s", cert.GetName(), name, dns, secret, serverName)
		}
	}
	for _, sm := range r.ofKind("ServiceMonitor") {
		eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
		tls, _ := eps[0].(map[string]any)["tlsConfig"].(map[string]any)
		ca, _, _ := unstructured.NestedStringMap(tls, "ca", "secret")
		if tls["serverName"] != serverName || ca["name"] != secret || ca["key"] != "ca.crt" || tls["insecureSkipVerify"] != nil {
			t.Errorf("ServiceMonitor tlsConfig %v: want serverName %s and the ca.crt of Secret %s, no insecureSkipVerify", tls, serverName, secret)
		}
	}
}

// checkServiceMonitor checks the rendered ServiceMonitor against the metrics
// Service, and (secure) against config/prometheus/monitor.yaml.
func checkServiceMonitor(t *testing.T, r rendered, secure bool) {
	t.Helper()
	sms := r.ofKind("ServiceMonitor")
	if len(sms) != 1 {
		t.Fatalf("%d ServiceMonitors, want 1", len(sms))
	}
	sm := sms[0]
	endpoints, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	if len(endpoints) != 1 {
		t.Fatalf("ServiceMonitor endpoints %v, want 1", endpoints)
	}
	ep := endpoints[0].(map[string]any)
	sel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
	var matched []string
	for _, o := range r.ofKind("Service") {
		if labels.SelectorFromSet(sel).Matches(labels.Set(o.GetLabels())) {
			matched = append(matched, o.GetName())
			svc := typed(t, o, &corev1.Service{})
			if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == ep["port"] }) {
				t.Errorf("Service %s has no port named %v", svc.Name, ep["port"])
			}
		}
	}
	if !slices.Equal(matched, []string{"rapport-controller-manager-metrics-service"}) {
		t.Errorf("the ServiceMonitor selects Services %v, want only the metrics Service", matched)
	}
	if ep["honorLabels"] != true {
		t.Errorf("honorLabels %v: Prometheus would rename the experiments' namespace label", ep["honorLabels"])
	}
	if !secure {
		if ep["scheme"] != "http" || ep["bearerTokenFile"] != nil || ep["tlsConfig"] != nil {
			t.Errorf("plain HTTP metrics scraped with %v", ep)
		}
		return
	}
	kust := decodeOne(t, "config/prometheus/monitor.yaml")
	kep, _, _ := unstructured.NestedSlice(kust.Object, "spec", "endpoints")
	for _, field := range []string{"path", "port", "scheme", "interval", "honorLabels", "bearerTokenFile", "tlsConfig"} {
		if !reflect.DeepEqual(ep[field], kep[0].(map[string]any)[field]) {
			t.Errorf("ServiceMonitor endpoint %s: chart %v, config/prometheus/monitor.yaml %v", field, ep[field], kep[0].(map[string]any)[field])
		}
	}
}

func TestChartRejectsBadValues(t *testing.T) {
	helmTool.find(t)
	for _, set := range []string{
		"replicaCount=two",
		"unknownValue=1",
		"image.pullPolicy=Sometimes",
		"collector.service.type=Ingress",
		"logging.encoder=xml",
		"image.digest=latest",
		"serviceMonitor.interval=30 seconds",
		"extraArgs={leader-elect}",
	} {
		t.Run(set, func(t *testing.T) {
			_, err := helmTemplate(t, set)
			if err == nil {
				t.Fatalf("--set %s was accepted", set)
			}
			if !strings.Contains(err.Error(), "schema") {
				t.Errorf("--set %s failed, but not on the schema: %v", set, err)
			}
		})
	}
}

// TestChartServiceMonitorNeedsAVerifiableCertificate: a ServiceMonitor
// over the self-signed certificate is refused, naming the values to set,
// unless its tlsConfig says how to scrape.
func TestChartServiceMonitorNeedsAVerifiableCertificate(t *testing.T) {
	helmTool.find(t)
	_, err := helmTemplate(t, "serviceMonitor.enabled=true")
	if err == nil || !strings.Contains(err.Error(), "metrics.tls.certManager.enabled=true or metrics.tls.secretName") {
		t.Fatalf("a ServiceMonitor without a verifiable certificate: %v, want a refusal naming metrics.tls", err)
	}
	r := mustTemplate(t, "serviceMonitor.enabled=true", "serviceMonitor.tlsConfig.insecureSkipVerify=true")
	eps, _, _ := unstructured.NestedSlice(r.ofKind("ServiceMonitor")[0].Object, "spec", "endpoints")
	if tls := eps[0].(map[string]any)["tlsConfig"]; !reflect.DeepEqual(tls, map[string]any{"insecureSkipVerify": true}) {
		t.Errorf("tlsConfig %v, want the one asked for", tls)
	}
}

// TestChartCRDsMatchConfig: the chart's CRDs are byte-identical copies of
// config/crd/bases (regenerate with `make manifests`, then copy).
func TestChartCRDsMatchConfig(t *testing.T) {
	bases, _ := filepath.Glob(repoPath("config/crd/bases/*.yaml"))
	copies, _ := filepath.Glob(repoPath(chartDir + "/crds/*.yaml"))
	names := func(paths []string) []string {
		out := make([]string, 0, len(paths))
		for _, p := range paths {
			out = append(out, filepath.Base(p))
		}
		return out
	}
	if len(bases) == 0 || !slices.Equal(names(bases), names(copies)) {
		t.Fatalf("chart CRDs %v, want the files of config/crd/bases %v", names(copies), names(bases))
	}
	for _, b := range bases {
		name := filepath.Base(b)
		if !bytes.Equal(readRepoFile(t, "config/crd/bases/"+name), readRepoFile(t, chartDir+"/crds/"+name)) {
			t.Errorf("%s/crds/%s differs from config/crd/bases/%s: cp config/crd/bases/*.yaml %s/crds/", chartDir, name, name, chartDir)
		}
	}
}

// generatedRole returns config/rbac/role.yaml, or, when `make manifests` has
// not written it yet (it is generated), controller-gen's output for the
// current code.
func generatedRole(t *testing.T) ([]byte, string) {
	t.Helper()
	const rel = "config/rbac/role.yaml"
	if b, err := os.ReadFile(repoPath(rel)); err == nil {
		return b, rel
	}
	cg := controllerGenTool.find(t)
	dir := t.TempDir()
	if out, err := run(t, cg, "rbac:roleName=rapport-manager-role", `paths=./api/...`, `paths=./internal/...`, `paths=./cmd/...`,
		"output:rbac:artifacts:config="+dir); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s does not exist (run `make manifests`); compared with controller-gen's output instead", rel)
	return b, "controller-gen output"
}

// TestChartRBACMatchesConfig: the chart's roles have the rules of the
// kustomize roles; the manager's are generated from the code markers.
func TestChartRBACMatchesConfig(t *testing.T) {
	r := mustTemplate(t)
	roleYAML, source := generatedRole(t)
	var generated rbacv1.ClusterRole
	objs := decodeDocs(t, roleYAML)
	if len(objs) != 1 {
		t.Fatalf("%s: %d objects, want 1", source, len(objs))
	}
	typed(t, objs[0], &generated)
	if !bytes.Equal(roleYAML, readRepoFile(t, chartDir+"/files/role.yaml")) {
		t.Errorf("%s/files/role.yaml differs from %s: copy it", chartDir, source)
	}
	for _, tc := range []struct {
		kind, chartName string
		want            []rbacv1.PolicyRule
		source          string
	}{
		{"ClusterRole", "rapport-manager-role", generated.Rules, source},
		{"Role", "rapport-leader-election-role", kustomizeRules(t, "config/rbac/leader_election_role.yaml"), "config/rbac/leader_election_role.yaml"},
		{"ClusterRole", "rapport-metrics-auth-role", kustomizeRules(t, "config/rbac/metrics_auth_role.yaml"), "config/rbac/metrics_auth_role.yaml"},
		{"ClusterRole", "rapport-metrics-reader", kustomizeRules(t, "config/rbac/metrics_reader_role.yaml"), "config/rbac/metrics_reader_role.yaml"},
		{"ClusterRole", "rapport-cxexperiment-editor-role", kustomizeRules(t, "config/rbac/cxexperiment_editor_role.yaml"), "config/rbac/cxexperiment_editor_role.yaml"},
		{"ClusterRole", "rapport-cxexperiment-viewer-role", kustomizeRules(t, "config/rbac/cxexperiment_viewer_role.yaml"), "config/rbac/cxexperiment_viewer_role.yaml"},
	} {
		o := r.find(tc.kind, tc.chartName)
		if o == nil {
			t.Errorf("the chart renders no %s %s", tc.kind, tc.chartName)
			continue
		}
		got := typed(t, o, &rbacv1.ClusterRole{}).Rules
		if !equality.Semantic.DeepEqual(got, tc.want) {
			t.Errorf("%s %s rules differ from %s:\nchart: %v\nwant:  %v", tc.kind, tc.chartName, tc.source, got, tc.want)
		}
	}
	editor := typed(t, r.find("ClusterRole", "rapport-cxexperiment-editor-role"), &rbacv1.ClusterRole{})
	if editor.Labels["rbac.authorization.k8s.io/aggregate-to-edit"] != "true" {
		t.Errorf("the editor role is not aggregated into edit: %v", editor.Labels)
	}
}

func kustomizeRules(t *testing.T, rel string) []rbacv1.PolicyRule {
	t.Helper()
	return typed(t, decodeOne(t, rel), &rbacv1.ClusterRole{}).Rules
}

// TestChartDeploymentMatchesConfig: with default values the chart's manager
// runs like config/manager/manager.yaml: same security contexts, probes,
// resources, ports, replicas and flags.
func TestChartDeploymentMatchesConfig(t *testing.T) {
	var kust *appsv1.Deployment
	for _, o := range decodeDocs(t, readRepoFile(t, "config/manager/manager.yaml")) {
		if o.GetKind() == "Deployment" {
			kust = typed(t, o, &appsv1.Deployment{})
		}
	}
	if kust == nil {
		t.Fatal("config/manager/manager.yaml has no Deployment")
	}
	r := mustTemplate(t)
	chart := typed(t, r.find("Deployment", "rapport-controller-manager"), &appsv1.Deployment{})
	kp, cp := kust.Spec.Template.Spec, chart.Spec.Template.Spec
	kc, cc := kp.Containers[0], cp.Containers[0]
	for _, tc := range []struct {
		what        string
		chart, kust any
	}{
		{"pod securityContext", cp.SecurityContext, kp.SecurityContext},
		{"container securityContext", cc.SecurityContext, kc.SecurityContext},
		{"livenessProbe", cc.LivenessProbe, kc.LivenessProbe},
		{"readinessProbe", cc.ReadinessProbe, kc.ReadinessProbe},
		{"resources", cc.Resources, kc.Resources},
		{"replicas", chart.Spec.Replicas, kust.Spec.Replicas},
		{"terminationGracePeriodSeconds", cp.TerminationGracePeriodSeconds, kp.TerminationGracePeriodSeconds},
		{"command", cc.Command, kc.Command},
	} {
		if !equality.Semantic.DeepEqual(tc.chart, tc.kust) {
			t.Errorf("%s differs:\nchart:     %s\nkustomize: %s", tc.what, asJSON(tc.chart), asJSON(tc.kust))
		}
	}
	chartPorts := map[string]int32{}
	for _, p := range cc.Ports {
		chartPorts[p.Name] = p.ContainerPort
	}
	for _, p := range kc.Ports {
		if chartPorts[p.Name] != p.ContainerPort {
			t.Errorf("container port %s: chart %d, kustomize %d", p.Name, chartPorts[p.Name], p.ContainerPort)
		}
	}
	chartArgs := argMap(cc.Args)
	for k, v := range argMap(kc.Args) {
		if chartArgs[k] != v {
			t.Errorf("kustomize runs the manager with --%s=%s, the chart with %q", k, v, chartArgs[k])
		}
	}

	// The Services: same ports, reaching the same container ports.
	for _, tc := range []struct{ kustFile, chartName string }{
		{"config/default/metrics_service.yaml", "rapport-controller-manager-metrics-service"},
		{"config/default/collector_service.yaml", "rapport-collector"},
	} {
		ks := typed(t, decodeOne(t, tc.kustFile), &corev1.Service{})
		o := r.find("Service", tc.chartName)
		if o == nil {
			t.Errorf("the chart renders no Service %s", tc.chartName)
			continue
		}
		cs := typed(t, o, &corev1.Service{})
		if len(ks.Spec.Ports) != len(cs.Spec.Ports) {
			t.Fatalf("Service %s: %d ports, kustomize %d", tc.chartName, len(cs.Spec.Ports), len(ks.Spec.Ports))
		}
		for i, kp := range ks.Spec.Ports {
			cp := cs.Spec.Ports[i]
			target := cp.TargetPort.IntValue()
			if target == 0 {
				target = int(chartPorts[cp.TargetPort.String()])
			}
			if kp.Name != cp.Name || kp.Port != cp.Port || kp.TargetPort.IntValue() != target {
				t.Errorf("Service %s port: chart %s %d -> %d, kustomize %s %d -> %s", tc.chartName, cp.Name, cp.Port, target, kp.Name, kp.Port, kp.TargetPort.String())
			}
		}
	}
}

func asJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestChartSharedFiles: the alerts and the dashboard of the chart are those
// of config/, byte for byte, and the rendered objects carry them unchanged.
func TestChartSharedFiles(t *testing.T) {
	for _, tc := range []struct{ config, chart string }{
		{rulesPath, chartDir + "/files/rules.yaml"},
		{dashboardPath, chartDir + "/files/rapport-dashboard.json"},
	} {
		if !bytes.Equal(readRepoFile(t, tc.config), readRepoFile(t, tc.chart)) {
			t.Errorf("%s differs from %s: cp %s %s", tc.chart, tc.config, tc.config, tc.chart)
		}
	}
	r := mustTemplate(t, allFeatures...)

	pr := r.ofKind("PrometheusRule")
	if len(pr) != 1 {
		t.Fatalf("%d PrometheusRules rendered, want 1", len(pr))
	}
	var want map[string]any
	if err := json.Unmarshal(mustJSON(t, decodeOne(t, rulesPath).Object["spec"]), &want); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(mustJSON(t, pr[0].Object["spec"]), &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("the rendered PrometheusRule spec differs from %s's", rulesPath)
	}

	cms := r.ofKind("ConfigMap")
	if len(cms) != 1 {
		t.Fatalf("%d ConfigMaps rendered, want 1", len(cms))
	}
	cm := typed(t, cms[0], &corev1.ConfigMap{})
	if cm.Labels["grafana_dashboard"] != "1" {
		t.Errorf("dashboard ConfigMap labels %v lack grafana_dashboard: \"1\"", cm.Labels)
	}
	if cm.Data["rapport-dashboard.json"] != string(readRepoFile(t, dashboardPath)) {
		t.Errorf("the dashboard ConfigMap's rapport-dashboard.json is not %s byte for byte", dashboardPath)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestKustomizeBuilds builds config/grafana and config/prometheus with the
// pinned kustomize and checks what they produce.
func TestKustomizeBuilds(t *testing.T) {
	kustomize := kustomizeTool.find(t)
	out, err := run(t, kustomize, "build", "config/grafana")
	if err != nil {
		t.Fatal(err)
	}
	objs := decodeDocs(t, out)
	if len(objs) != 1 || objs[0].GetKind() != "ConfigMap" {
		t.Fatalf("config/grafana builds %d objects, want one ConfigMap", len(objs))
	}
	cm := typed(t, objs[0], &corev1.ConfigMap{})
	if cm.Name != "rapport-dashboard" || cm.Labels["grafana_dashboard"] != "1" {
		t.Errorf("ConfigMap %s with labels %v, want rapport-dashboard labelled grafana_dashboard: \"1\"", cm.Name, cm.Labels)
	}
	if cm.Data["rapport-dashboard.json"] != string(readRepoFile(t, dashboardPath)) {
		t.Errorf("the ConfigMap does not hold %s unchanged", dashboardPath)
	}

	out, err = run(t, kustomize, "build", "config/prometheus")
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, o := range decodeDocs(t, out) {
		kinds[o.GetKind()]++
		if o.GetAPIVersion() != monitoringV1 {
			t.Errorf("%s %s: apiVersion %s, want %s", o.GetKind(), o.GetName(), o.GetAPIVersion(), monitoringV1)
		}
	}
	if kinds["ServiceMonitor"] != 1 || kinds["PrometheusRule"] != 1 || len(kinds) != 2 {
		t.Errorf("config/prometheus builds %v, want one ServiceMonitor and one PrometheusRule", kinds)
	}

	// The kustomize ServiceMonitor scrapes the metrics Service of config/default.
	sm := decodeOne(t, "config/prometheus/monitor.yaml")
	svc := typed(t, decodeOne(t, "config/default/metrics_service.yaml"), &corev1.Service{})
	sel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
	if !labels.SelectorFromSet(sel).Matches(labels.Set(svc.Labels)) {
		t.Errorf("the ServiceMonitor selects %v; the metrics Service has labels %v", sel, svc.Labels)
	}
	eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	ep := eps[0].(map[string]any)
	if svc.Name != "controller-manager-metrics-service" || ep["port"] != "https" || svc.Spec.Ports[0].Name != "https" {
		t.Errorf("the ServiceMonitor scrapes port %v; the metrics Service %s has port %s", ep["port"], svc.Name, svc.Spec.Ports[0].Name)
	}
	if ep["scheme"] != "https" || ep["bearerTokenFile"] == nil || ep["honorLabels"] != true {
		t.Errorf("endpoint %v: want https, a bearer token and honorLabels", ep)
	}

	// It verifies the certificate config/certmanager issues for that Service
	// (with the prefix and namespace of config/default), which the patch of
	// config/default mounts.
	tls, _ := ep["tlsConfig"].(map[string]any)
	ca, _, _ := unstructured.NestedStringMap(tls, "ca", "secret")
	serverName := "rapport-" + svc.Name + ".rapport-system.svc"
	if tls["serverName"] != serverName || ca["key"] != "ca.crt" || tls["insecureSkipVerify"] != nil {
		t.Errorf("tlsConfig %v: want serverName %s and a ca.crt, no insecureSkipVerify", tls, serverName)
	}
	out, err = run(t, kustomize, "build", "config/certmanager")
	if err != nil {
		t.Fatalf("kustomize build config/certmanager: %v\n%s", err, out)
	}
	var cert *unstructured.Unstructured
	for _, o := range decodeDocs(t, out) {
		if o.GetKind() == "Certificate" {
			cert = o
		}
	}
	if cert == nil {
		t.Fatal("config/certmanager builds no Certificate")
	}
	secret, _, _ := unstructured.NestedString(cert.Object, "spec", "secretName")
	dns, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
	if secret != ca["name"] || !slices.Contains(dns, serverName) {
		t.Errorf("config/certmanager issues Secret %s for %v; the ServiceMonitor verifies %s with Secret %s", secret, dns, serverName, ca["name"])
	}
	patch := readRepoFile(t, "config/default/cert_metrics_manager_patch.yaml")
	if !strings.Contains(string(patch), "--metrics-cert-path=") || !strings.Contains(string(patch), "secretName: "+secret) {
		t.Errorf("config/default/cert_metrics_manager_patch.yaml does not mount Secret %s for --metrics-cert-path", secret)
	}
}

// TestKustomizeMetricsCertificate builds config/default with the lines its
// comments say to uncomment for a verified scrape (../prometheus,
// ../certmanager and the certificate patch), from a copy of config/: the
// manager serves the Secret cert-manager writes, for the name the
// ServiceMonitor verifies.
func TestKustomizeMetricsCertificate(t *testing.T) {
	kustomize := kustomizeTool.find(t)
	dir := filepath.Join(t.TempDir(), "config")
	if err := os.CopyFS(dir, os.DirFS(repoPath("config"))); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "default", "kustomization.yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	uncomment := false
	for _, l := range strings.Split(string(b), "\n") {
		switch {
		case l == "#- ../prometheus" || l == "#- ../certmanager":
			l = l[1:]
		case l == "#patches:":
			l, uncomment = l[1:], true
		case uncomment && strings.HasPrefix(l, "#"):
			l = l[1:]
		default:
			uncomment = false
		}
		lines = append(lines, l)
	}
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, kustomize, "build", filepath.Join(dir, "default"))
	if err != nil {
		t.Fatalf("config/default with the metrics certificate does not build: %v\n%s", err, out)
	}
	objs := decodeDocs(t, out)
	find := func(kind string) *unstructured.Unstructured {
		for _, o := range objs {
			if o.GetKind() == kind {
				return o
			}
		}
		t.Fatalf("no %s built", kind)
		return nil
	}
	d := typed(t, find("Deployment"), &appsv1.Deployment{})
	sm := mustTemplateLike(objs)
	checkMetricsCertificate(t, sm, d, "rapport-metrics-cert")
}

// mustTemplateLike wraps built objects for the checks of rendered charts.
func mustTemplateLike(objs []*unstructured.Unstructured) rendered { return rendered{objs: objs} }
