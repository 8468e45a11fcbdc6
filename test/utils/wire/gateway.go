package wire

import (
	"context"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Gateway is the GatewayClass and Gateway the proxy serves: one HTTP
// listener, routes from every namespace.
type Gateway struct {
	// ClassName and ControllerName of the GatewayClass.
	ClassName, ControllerName string
	// Namespace and Name of the Gateway.
	Namespace, Name string
	// Port of the HTTP listener (the proxy's entry point listens on it).
	Port gwv1.PortNumber
}

// ParentRef is the parentRefs entry of a route attached to the Gateway.
func (g Gateway) ParentRef() gwv1.ParentReference {
	ns := gwv1.Namespace(g.Namespace)
	return gwv1.ParentReference{Name: gwv1.ObjectName(g.Name), Namespace: &ns}
}

// Install creates the GatewayClass, the namespace and the Gateway, and waits
// until the proxy has accepted the class and programmed the Gateway. It
// returns the features the implementation says it supports
// (GatewayClass status.supportedFeatures).
func (g Gateway) Install(ctx context.Context, c client.Client) (Features, error) {
	class := &gwv1.GatewayClass{
		ObjectMeta: metav1.ObjectMeta{Name: g.ClassName},
		Spec:       gwv1.GatewayClassSpec{ControllerName: gwv1.GatewayController(g.ControllerName)},
	}
	if err := c.Create(ctx, class); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("create GatewayClass %s: %w", g.ClassName, err)
	}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: g.Namespace}}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, err
	}
	all := gwv1.NamespacesFromAll
	gw := &gwv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{Name: g.Name, Namespace: g.Namespace},
		Spec: gwv1.GatewaySpec{
			GatewayClassName: gwv1.ObjectName(g.ClassName),
			Listeners: []gwv1.Listener{{
				Name: "http", Port: g.Port, Protocol: gwv1.HTTPProtocolType,
				AllowedRoutes: &gwv1.AllowedRoutes{Namespaces: &gwv1.RouteNamespaces{From: &all}},
			}},
		},
	}
	if err := c.Create(ctx, gw); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("create Gateway %s/%s: %w", g.Namespace, g.Name, err)
	}
	var features Features
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, types.NamespacedName{Name: g.ClassName}, class); err != nil {
			return false, err
		}
		if err := c.Get(ctx, types.NamespacedName{Namespace: g.Namespace, Name: g.Name}, gw); err != nil {
			return false, err
		}
		features = Features{}
		for _, f := range class.Status.SupportedFeatures {
			features = append(features, string(f.Name))
		}
		return meta.IsStatusConditionTrue(class.Status.Conditions, string(gwv1.GatewayClassConditionStatusAccepted)) &&
			meta.IsStatusConditionTrue(gw.Status.Conditions, string(gwv1.GatewayConditionProgrammed)), nil
	})
	if err != nil {
		return nil, fmt.Errorf("the proxy did not accept GatewayClass %s and program Gateway %s/%s within a minute (class conditions %v, gateway conditions %v): %w",
			g.ClassName, g.Namespace, g.Name, class.Status.Conditions, gw.Status.Conditions, err)
	}
	return features, nil
}

// Features are the Gateway API features an implementation supports, as its
// GatewayClass reports them (e.g. HTTPRouteQueryParamMatching).
type Features []string

// Has reports whether the implementation supports a feature.
func (f Features) Has(name string) bool { return slices.Contains(f, name) }

// Gateway API feature names the suite looks for (sigs.k8s.io/gateway-api/pkg/features).
const (
	// FeatureBackendRequestHeaderModification: RequestHeaderModifier filters
	// on backendRefs (Extended), which carry x-rapport-variant.
	FeatureBackendRequestHeaderModification = "HTTPRouteBackendRequestHeaderModification"
	// FeatureQueryParamMatching: query parameter matches (Extended), needed
	// by segments with queryParams.
	FeatureQueryParamMatching = "HTTPRouteQueryParamMatching"
)

// EndpointsManager is the field manager and managed-by label of the
// EndpointSlices this package writes.
const EndpointsManager = "e2e.rapport.dev"

// PublishEndpoints writes the EndpointSlice of a Service (port, one ready
// endpoint per address): what the endpointslice controller writes from
// ready pods in a cluster. No kubelet runs here, so the tests do it.
// Addresses must not be loopback (the API server refuses them): use
// addresses of netns.Prefix.
func PublishEndpoints(ctx context.Context, c client.Client, ns, service string, port int32, addrs ...string) error {
	endpoints := make([]discoveryv1.Endpoint, 0, len(addrs))
	for _, a := range addrs {
		endpoints = append(endpoints, discoveryv1.Endpoint{
			Addresses:  []string{a},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr(true), Serving: ptr(true), Terminating: ptr(false)},
		})
	}
	slice := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: service + "-e2e", Namespace: ns}}
	_, err := controllerutil.CreateOrUpdate(ctx, c, slice, func() error {
		slice.Labels = map[string]string{
			discoveryv1.LabelServiceName: service,
			discoveryv1.LabelManagedBy:   EndpointsManager,
		}
		slice.AddressType = discoveryv1.AddressTypeIPv4
		slice.Endpoints = endpoints
		slice.Ports = []discoveryv1.EndpointPort{{Name: ptr(""), Port: ptr(port), Protocol: ptr(corev1.ProtocolTCP)}}
		return nil
	})
	if err != nil {
		return fmt.Errorf("write EndpointSlice of Service %s/%s: %w", ns, service, err)
	}
	return nil
}

func ptr[T any](v T) *T { return &v }
