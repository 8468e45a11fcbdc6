package manifests

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/rapport-dev/rapport/test/utils"
)

// warnings collects the warnings the API server sends (Pod Security
// admission warns about workloads whose pods it would refuse).
type warnings struct {
	mu   sync.Mutex
	list []string
}

func (w *warnings) HandleWarningHeaderWithContext(_ context.Context, _ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.list
	w.list = nil
	return out
}

// TestChartAcceptedByAPIServer applies the rendered chart to a real
// kube-apiserver (envtest, with Rapport's CRDs) with server-side dry-run: the
// objects are valid Kubernetes objects, not just well-formed YAML. The
// release namespace enforces and warns at the restricted Pod Security level,
// so the manager's pod template must comply.
func TestChartAcceptedByAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane; skipped with -short")
	}
	renders := map[string]rendered{
		"defaults":     mustTemplate(t),
		"all features": mustTemplate(t, allFeatures...),
	}

	env, err := utils.NewEnvironment(utils.EnvironmentOptions{})
	if err != nil {
		missingDependency(t, "no envtest control plane: %v", err)
	}
	cfg, err := env.Start()
	if err != nil {
		missingDependency(t, "envtest did not start: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stop envtest: %v", err)
		}
	})
	warned := &warnings{}
	cfg.WarningHandlerWithContext = warned
	k8s, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: releaseNS, Labels: map[string]string{
		"pod-security.kubernetes.io/enforce": "restricted",
		"pod-security.kubernetes.io/warn":    "restricted",
	}}}
	if err := k8s.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}

	apply := func(o *unstructured.Unstructured) error {
		return k8s.Apply(ctx, client.ApplyConfigurationFromUnstructured(o.DeepCopy()),
			client.DryRunAll, client.FieldOwner("test-manifests"), client.ForceOwnership)
	}

	// Pod Security admission must be active for the check below to mean
	// anything: a privileged copy of the Deployment has to draw a warning.
	psaActive := false
	if d := renders["defaults"].find("Deployment", "rapport-controller-manager"); d != nil {
		bad := d.DeepCopy()
		containers, _, _ := unstructured.NestedSlice(bad.Object, "spec", "template", "spec", "containers")
		c := containers[0].(map[string]any)
		c["securityContext"] = map[string]any{"privileged": true}
		_ = unstructured.SetNestedSlice(bad.Object, containers, "spec", "template", "spec", "containers")
		if err := apply(bad); err != nil {
			t.Fatalf("dry-run of a privileged Deployment: %v", err)
		}
		for _, w := range warned.take() {
			psaActive = psaActive || strings.Contains(w, "PodSecurity")
		}
		if !psaActive {
			t.Logf("the API server sent no PodSecurity warning for a privileged pod template; the restricted check is inconclusive")
		}
	}

	for name, r := range renders {
		t.Run(name, func(t *testing.T) {
			applied := 0
			for _, o := range r.objs {
				if o.GetAPIVersion() == monitoringV1 || o.GetAPIVersion() == certManagerV1 {
					// ServiceMonitor, PrometheusRule, Issuer and Certificate: the
					// CRDs of Prometheus Operator and cert-manager are not installed
					// in envtest; TestChartRenders checks them.
					continue
				}
				if err := apply(o); err != nil {
					t.Errorf("%s %s is refused: %v", o.GetKind(), o.GetName(), err)
					continue
				}
				applied++
				for _, w := range warned.take() {
					if psaActive && strings.Contains(w, "PodSecurity") {
						t.Errorf("%s %s violates the restricted Pod Security Standard: %s", o.GetKind(), o.GetName(), w)
					} else {
						t.Logf("%s %s: warning: %s", o.GetKind(), o.GetName(), w)
					}
				}
			}
			if applied < 10 {
				t.Errorf("only %d objects applied", applied)
			}
		})
	}
}
