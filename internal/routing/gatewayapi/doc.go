// Package gatewayapi routes experiment traffic with Gateway API HTTPRoutes.
//
// The user owns the parent HTTPRoute (often through GitOps). For an
// experiment with segments Rapport never touches it: it applies a child
// HTTPRoute, owned by the experiment, with the parent's parentRefs and
// hostnames and, per segment and per parent rule that routes to the control,
// the parent rule's matches plus the segment's conditions. More specific
// matches win under the Gateway API precedence rules, so the segment's
// customers take the child route and everyone else keeps the parent.
//
// Without segments the split applies to all traffic of the parent rules that
// route to the control: only those rules' backendRefs (and sessionPersistence
// when stickiness is asked for) change, through JSON patches guarded by a
// test of the current value, and the originals are recorded in status first
// so they are restored exactly.
//
// Rendering (render.go) is pure; router.go does the I/O.
package gatewayapi
