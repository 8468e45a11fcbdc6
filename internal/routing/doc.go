// Package routing turns the traffic split Rapport wants (weights per segment
// and variant) into changes of the cluster: HTTPRoute weights with Gateway
// API (sub-package gatewayapi) or Deployment replica counts (sub-package
// replicas). The plan, the changes and the routing errors they share are in
// sub-package traffic.
//
// It owns the Router contract and its factory, New, which every caller
// uses (the controller, the simulator, the tests). It does not decide the
// weights (package rollout does) and it never writes experiment status: a
// Router returns what must be recorded (Record) and the writes to make
// (Diff), and the controller records the decision before it applies them.
package routing
