package routing

import (
	"context"
	"errors"
	"fmt"
	"time"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// FieldOwner is the server-side apply field manager Rapport writes with.
const FieldOwner = "rapport"

// Backend is one variant's share of a segment's traffic.
type Backend struct {
	Variant string
	Control bool
	// Service and Port route the variant (Gateway API); Deployment runs it (replicas).
	Service    string
	Port       int32
	Deployment string
	// Weight is the percentage of the segment's traffic, 0..100.
	Weight int32
}

// SegmentRoute is the split of one segment.
type SegmentRoute struct {
	// Segment is the CustomerSegment name, or cxv1.AllSegment.
	Segment string
	// Match recognises the segment's requests; nil for cxv1.AllSegment.
	Match *cxv1.SegmentMatch
	// Backends holds every variant, the control first, in spec order.
	Backends []Backend
}

// AllControl reports whether the control receives all of the segment's traffic.
func (s SegmentRoute) AllControl() bool {
	for _, b := range s.Backends {
		if !b.Control && b.Weight > 0 {
			return false
		}
	}
	return true
}

// Plan is the traffic split of a whole experiment.
type Plan struct {
	// Segments holds one entry per segment of the experiment.
	Segments []SegmentRoute
	// Stickiness and TagRequests come from spec.traffic.gatewayAPI.
	Stickiness  *cxv1.Stickiness
	TagRequests bool
	// Assignment, when set, asks for the signed assignment cookie on each
	// variant's responses (spec.traffic.gatewayAPI.assignmentCookie).
	Assignment *AssignmentCookie
	// BeforeWrite, when set, is called once per Apply, right before the
	// router's first write, and only when the plan changes something. The
	// controller records the decision the plan carries there (write-ahead),
	// so that traffic never reflects a decision status does not hold. An
	// error stops the Apply before anything is written.
	BeforeWrite func(context.Context) error
}

// AssignmentCookie is the signed cookie a router sets on the responses of
// each variant it routes, recording the variant and segment that served
// the customer (package assignment signs it).
type AssignmentCookie struct {
	// Name of the cookie.
	Name string
	// Value returns the signed cookie value for a variant in a segment.
	Value func(segment, variant string) string
	// MaxAge is the cookie's lifetime; Secure adds the Secure attribute.
	MaxAge time.Duration
	Secure bool
}

// WriteGuard returns a function for routers to call before each write: it
// runs p.BeforeWrite the first time and does nothing afterwards.
func (p Plan) WriteGuard() func(context.Context) error {
	called := false
	return func(ctx context.Context) error {
		if called || p.BeforeWrite == nil {
			return nil
		}
		called = true
		return p.BeforeWrite(ctx)
	}
}

// AllControl reports whether every segment routes only to the control.
func (p Plan) AllControl() bool {
	for _, s := range p.Segments {
		if !s.AllControl() {
			return false
		}
	}
	return true
}

// Weights returns Weights[segment][variant].
func (p Plan) Weights() map[string]map[string]int32 {
	out := make(map[string]map[string]int32, len(p.Segments))
	for _, s := range p.Segments {
		out[s.Segment] = make(map[string]int32, len(s.Backends))
		for _, b := range s.Backends {
			out[s.Segment][b.Variant] = b.Weight
		}
	}
	return out
}

// Router applies plans. Implementations are idempotent: applying the same
// plan twice changes nothing the second time.
type Router interface {
	// Record returns what must be stored in status before the first change,
	// so that the change can be undone exactly after a crash (write-ahead).
	// It returns the current record unchanged when it is already complete.
	Record(ctx context.Context, exp *cxv1.CXExperiment) (cxv1.TrafficStatus, error)
	// Apply routes traffic as planned. It reports whether it changed anything.
	Apply(ctx context.Context, exp *cxv1.CXExperiment, plan Plan) (changed bool, err error)
	// Weights reads the split currently applied.
	Weights(ctx context.Context, exp *cxv1.CXExperiment) (map[string]map[string]int32, error)
	// Finalize undoes the experiment's changes: traffic back to the control,
	// or, with keepPromoted, the promoted split left in place for good.
	Finalize(ctx context.Context, exp *cxv1.CXExperiment, keepPromoted bool) error
}

// Error is a routing problem the user must fix; Reason is a condition reason
// of package v1alpha1 and Error() names the object and the fix.
type Error struct {
	Reason  string
	Message string
}

func (e *Error) Error() string { return e.Message }

// Errorf returns an *Error.
func Errorf(reason, format string, args ...any) error {
	return &Error{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// ReasonOf returns the condition reason of a routing error, or fallback.
func ReasonOf(err error, fallback string) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return fallback
}
