package routing

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/routing/gatewayapi"
	"github.com/rapport-dev/rapport/internal/routing/replicas"
	"github.com/rapport-dev/rapport/internal/routing/traffic"
)

// TestNewPicksTheRouterOrFailsLoudly: the factory never falls back to a
// mode the experiment did not ask for.
func TestNewPicksTheRouterOrFailsLoudly(t *testing.T) {
	scheme := runtime.NewScheme()
	c := fake.NewClientBuilder().WithScheme(scheme).Build()
	gateway := cxv1.Traffic{GatewayAPI: &cxv1.GatewayAPITraffic{HTTPRoute: "checkout"}}
	reps := cxv1.Traffic{Replicas: &cxv1.ReplicasTraffic{Total: 10}}
	both := cxv1.Traffic{GatewayAPI: gateway.GatewayAPI, Replicas: reps.Replicas}
	for _, tc := range []struct {
		name       string
		traffic    cxv1.Traffic
		deps       Deps
		want       string // type of router, or "" for an error
		wantReason string
		wantErr    string
	}{
		{name: "Gateway API", traffic: gateway, deps: Deps{Client: c, Scheme: scheme, GatewayAPI: true}, want: "gatewayapi"},
		{name: "replicas", traffic: reps, deps: Deps{Client: c}, want: "replicas"},
		{name: "replicas on a cluster without Gateway API", traffic: reps, deps: Deps{Client: c, GatewayAPI: false}, want: "replicas"},
		{name: "Gateway API without the HTTPRoute CRD", traffic: gateway, deps: Deps{Client: c, Scheme: scheme},
			wantReason: cxv1.ReasonRouteNotFound, wantErr: "install Gateway API"},
		{name: "no traffic mode", traffic: cxv1.Traffic{}, deps: Deps{Client: c, GatewayAPI: true},
			wantReason: cxv1.ReasonInvalidSpec, wantErr: "set exactly one of gatewayAPI or replicas"},
		{name: "both traffic modes", traffic: both, deps: Deps{Client: c, Scheme: scheme, GatewayAPI: true},
			wantReason: cxv1.ReasonInvalidSpec, wantErr: "not both"},
		{name: "no client", traffic: reps, deps: Deps{}, wantErr: "no client"},
		{name: "Gateway API without a scheme", traffic: gateway, deps: Deps{Client: c, GatewayAPI: true}, wantErr: "needs a scheme"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exp := &cxv1.CXExperiment{Spec: cxv1.CXExperimentSpec{Traffic: tc.traffic}}
			r, err := New(exp, tc.deps)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("New returned %T, want an error", r)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error %q does not say %q", err, tc.wantErr)
				}
				if tc.wantReason != "" && traffic.ReasonOf(err, "") != tc.wantReason {
					t.Errorf("reason %q, want %q", traffic.ReasonOf(err, ""), tc.wantReason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			switch r.(type) {
			case *gatewayapi.Router:
				if tc.want != "gatewayapi" {
					t.Fatalf("got a Gateway API router, want %s", tc.want)
				}
			case *replicas.Router:
				if tc.want != "replicas" {
					t.Fatalf("got a replicas router, want %s", tc.want)
				}
			default:
				t.Fatalf("unexpected router %T", r)
			}
		})
	}
}
