// Package routing turns the traffic split Rapport wants (weights per segment
// and variant) into changes of the cluster: HTTPRoute weights with Gateway
// API (sub-package gatewayapi) or Deployment replica counts (sub-package
// replicas).
//
// It owns the Router contract and the Plan shape. It does not decide the
// weights (package rollout does) and it never writes experiment status: a
// Router returns what must be recorded and the controller records it.
package routing
