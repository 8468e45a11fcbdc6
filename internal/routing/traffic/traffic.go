// Package traffic holds the shapes every router shares: the Plan (the split
// Rapport wants), the Changes a router computes to reach it, and the Error
// a router returns for a problem the user must fix.
//
// It is the leaf of the routing packages: package routing (the Router
// contract and its factory) and the routers (gatewayapi, replicas) import it,
// so the factory can import the routers. It does no I/O of its own.
package traffic

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

// AllControl reports whether every segment routes only to the control.
func (p Plan) AllControl() bool {
	for _, s := range p.Segments {
		if !s.AllControl() {
			return false
		}
	}
	return true
}

// Change is one write a router found necessary to route a plan: a patch of
// the user's route, an apply or delete of the child route, a scale of a
// Deployment. A router computes its changes without writing (Router.Diff),
// so the caller can record what they carry before any of them is made.
type Change interface {
	// Apply makes the write.
	Apply(ctx context.Context) error
}

// Apply makes the changes in order and stops at the first that fails.
func Apply(ctx context.Context, changes []Change) error {
	for _, c := range changes {
		if err := c.Apply(ctx); err != nil {
			return err
		}
	}
	return nil
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
