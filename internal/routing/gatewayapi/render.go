package gatewayapi

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/assignment"
	"github.com/rapport-dev/rapport/internal/routing/traffic"
)

// Gateway API limits of an HTTPRoute (standard channel, v1.x).
const (
	MaxRules         = 16
	MaxMatchesInRule = 64
	MaxMatches       = 128
)

// Request headers added with spec.traffic.gatewayAPI.tagRequests.
const (
	HeaderVariant = "x-rapport-variant"
	HeaderSegment = "x-rapport-segment"
)

// refersTo reports whether a backend reference points at Service name in namespace ns.
func refersTo(ref gwv1.BackendObjectReference, routeNamespace, name string) bool {
	if ref.Group != nil && *ref.Group != "" && *ref.Group != "core" {
		return false
	}
	if ref.Kind != nil && *ref.Kind != "Service" {
		return false
	}
	if ref.Namespace != nil && string(*ref.Namespace) != routeNamespace {
		return false
	}
	return string(ref.Name) == name
}

// ControlRules returns the indexes of the route's rules that send traffic to
// the control Service.
func ControlRules(route *gwv1.HTTPRoute, controlService string) []int {
	var out []int
	for i, r := range route.Spec.Rules {
		for _, b := range r.BackendRefs {
			if refersTo(b.BackendObjectReference, route.Namespace, controlService) {
				out = append(out, i)
				break
			}
		}
	}
	return out
}

// controlRef returns the rule's backend reference to the control Service.
func controlRef(rule gwv1.HTTPRouteRule, ns, controlService string) (gwv1.HTTPBackendRef, bool) {
	for _, b := range rule.BackendRefs {
		if refersTo(b.BackendObjectReference, ns, controlService) {
			return *b.DeepCopy(), true
		}
	}
	return gwv1.HTTPBackendRef{}, false
}

func ptr[T any](v T) *T { return &v }

// serviceRef renders a backend reference to a variant's Service.
func serviceRef(b traffic.Backend) gwv1.HTTPBackendRef {
	return gwv1.HTTPBackendRef{BackendRef: gwv1.BackendRef{
		BackendObjectReference: gwv1.BackendObjectReference{
			Group: ptr(gwv1.Group("")),
			Kind:  ptr(gwv1.Kind("Service")),
			Name:  gwv1.ObjectName(b.Service),
			Port:  ptr(b.Port),
		},
		Weight: ptr(b.Weight),
	}}
}

// withTags merges the x-rapport-* headers into the reference's
// RequestHeaderModifier filter. Filters on a backendRef are Extended
// support in Gateway API (HTTPRouteBackendRequestHeaderModification): some
// gateways, Traefik v3.6 among them, ignore them.
func withTags(ref gwv1.HTTPBackendRef, variant, segment string) gwv1.HTTPBackendRef {
	ref.Filters = setHeaders(ref.Filters, gwv1.HTTPHeader{Name: HeaderVariant, Value: variant}, gwv1.HTTPHeader{Name: HeaderSegment, Value: segment})
	return ref
}

// setHeaders merges headers into the Set of a filter list's
// RequestHeaderModifier (a list may hold only one), adding one if needed.
func setHeaders(filters []gwv1.HTTPRouteFilter, set ...gwv1.HTTPHeader) []gwv1.HTTPRouteFilter {
	for i, f := range filters {
		if f.Type == gwv1.HTTPRouteFilterRequestHeaderModifier && f.RequestHeaderModifier != nil {
			m := f.RequestHeaderModifier
			for _, h := range set {
				m.Set = upsertHeader(m.Set, h)
			}
			filters[i] = f
			return filters
		}
	}
	return append(filters, gwv1.HTTPRouteFilter{
		Type:                  gwv1.HTTPRouteFilterRequestHeaderModifier,
		RequestHeaderModifier: &gwv1.HTTPHeaderFilter{Set: set},
	})
}

func upsertHeader(hs []gwv1.HTTPHeader, h gwv1.HTTPHeader) []gwv1.HTTPHeader {
	for i := range hs {
		if strings.EqualFold(string(hs[i].Name), string(h.Name)) {
			hs[i].Value = h.Value
			return hs
		}
	}
	return append(hs, h)
}

// HeaderSetCookie is the response header of the assignment cookie.
const HeaderSetCookie = "Set-Cookie"

// withAssignmentCookie adds the signed assignment cookie to the responses
// of the reference, merged into its ResponseHeaderModifier filter (a filter
// list may hold only one). The header is added, never set, so the
// backend's own Set-Cookie headers pass through. A filter that already adds
// a Set-Cookie header cannot take a second one (add is a map keyed by
// header name): that is an error naming the fix.
func withAssignmentCookie(ref gwv1.HTTPBackendRef, c *traffic.AssignmentCookie, variant, segment string) (gwv1.HTTPBackendRef, error) {
	h := gwv1.HTTPHeader{Name: HeaderSetCookie, Value: assignment.SetCookie(c.Name, c.Value(segment, variant), c.MaxAge, c.Secure)}
	for i, f := range ref.Filters {
		if f.Type != gwv1.HTTPRouteFilterResponseHeaderModifier || f.ResponseHeaderModifier == nil {
			continue
		}
		m := f.ResponseHeaderModifier
		for _, a := range m.Add {
			if strings.EqualFold(string(a.Name), HeaderSetCookie) {
				return ref, traffic.Errorf(cxv1.ReasonAssignmentCookieConflict,
					"the backendRef to Service %s already adds a Set-Cookie response header, and a filter can add a header name only once; move that cookie to the rule's filters, or recreate the experiment without spec.traffic.gatewayAPI.assignmentCookie", ref.Name)
			}
		}
		m.Add = append(m.Add, h)
		ref.Filters[i] = f
		return ref, nil
	}
	ref.Filters = append(ref.Filters, gwv1.HTTPRouteFilter{
		Type:                   gwv1.HTTPRouteFilterResponseHeaderModifier,
		ResponseHeaderModifier: &gwv1.HTTPHeaderFilter{Add: []gwv1.HTTPHeader{h}},
	})
	return ref, nil
}

// RenderBackends renders the backendRefs of a rule for one segment's split:
// the rule's own control reference (its filters kept) with the control's
// weight, then one reference per other variant. tag adds the x-rapport-*
// request headers; a non-nil cookie adds the signed assignment cookie to
// each variant's responses.
func RenderBackends(rule gwv1.HTTPRouteRule, routeNamespace string, seg traffic.SegmentRoute, tag bool, cookie *traffic.AssignmentCookie) ([]gwv1.HTTPBackendRef, error) {
	var out []gwv1.HTTPBackendRef
	for _, b := range seg.Backends {
		var ref gwv1.HTTPBackendRef
		if b.Control {
			c, ok := controlRef(rule, routeNamespace, b.Service)
			if !ok {
				return nil, traffic.Errorf(cxv1.ReasonNoControlRule, "route rule has no backendRef to the control Service %s", b.Service)
			}
			ref = c
			ref.Weight = ptr(b.Weight)
			if ref.Port == nil {
				ref.Port = ptr(b.Port)
			}
		} else {
			ref = serviceRef(b)
		}
		if tag {
			ref = withTags(ref, b.Variant, seg.Segment)
		}
		if cookie != nil {
			var err error
			if ref, err = withAssignmentCookie(ref, cookie, b.Variant, seg.Segment); err != nil {
				return nil, err
			}
		}
		out = append(out, ref)
	}
	return out, nil
}

// SessionPersistence renders spec.traffic.gatewayAPI.stickiness.
func SessionPersistence(s *cxv1.Stickiness) *gwv1.SessionPersistence {
	if s == nil || s.Cookie == nil {
		return nil
	}
	sp := &gwv1.SessionPersistence{
		SessionName:  ptr(s.Cookie.Name),
		Type:         ptr(gwv1.CookieBasedSessionPersistence),
		CookieConfig: &gwv1.CookieConfig{LifetimeType: ptr(gwv1.SessionCookieLifetimeType)},
	}
	if s.Cookie.Lifetime != nil && s.Cookie.Lifetime.Duration > 0 {
		sp.AbsoluteTimeout = ptr(gwv1.Duration(FormatDuration(s.Cookie.Lifetime.Duration)))
		sp.CookieConfig.LifetimeType = ptr(gwv1.PermanentCookieLifetimeType)
	}
	return sp
}

// FormatDuration renders d in the Gateway API duration syntax (at most four
// parts of up to five digits each: "24h", "1h30m", "1500ms"), rounded down to
// the millisecond.
func FormatDuration(d time.Duration) string {
	d = d.Truncate(time.Millisecond)
	if d <= 0 {
		return "0s"
	}
	var b strings.Builder
	for _, u := range []struct {
		unit time.Duration
		sym  string
	}{{time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}, {time.Millisecond, "ms"}} {
		if n := d / u.unit; n > 0 {
			fmt.Fprintf(&b, "%d%s", n, u.sym)
			d -= n * u.unit
		}
	}
	return b.String()
}

// MergeMatch adds a segment's conditions to a parent rule's match. It fails
// when both constrain the same header or query parameter differently (the
// combination could never match).
func MergeMatch(parent gwv1.HTTPRouteMatch, segment string, m *cxv1.SegmentMatch) (gwv1.HTTPRouteMatch, error) {
	out := *parent.DeepCopy()
	if out.Path == nil {
		out.Path = &gwv1.HTTPPathMatch{Type: ptr(gwv1.PathMatchPathPrefix), Value: ptr("/")}
	}
	for i := range out.Headers {
		if out.Headers[i].Type == nil {
			out.Headers[i].Type = ptr(gwv1.HeaderMatchExact)
		}
	}
	for i := range out.QueryParams {
		if out.QueryParams[i].Type == nil {
			out.QueryParams[i].Type = ptr(gwv1.QueryParamMatchExact)
		}
	}
	addHeader := func(h gwv1.HTTPHeaderMatch) error {
		for _, e := range out.Headers {
			if strings.EqualFold(string(e.Name), string(h.Name)) {
				if *e.Type == *h.Type && e.Value == h.Value {
					return nil
				}
				return traffic.Errorf(cxv1.ReasonSegmentInvalid,
					"segment %s matches header %s, which the route rule already matches with another value; change the segment or the route", segment, h.Name)
			}
		}
		out.Headers = append(out.Headers, h)
		return nil
	}
	for _, h := range m.Headers {
		t := gwv1.HeaderMatchExact
		if h.Type == cxv1.MatchRegularExpression {
			t = gwv1.HeaderMatchRegularExpression
		}
		if err := addHeader(gwv1.HTTPHeaderMatch{Type: ptr(t), Name: gwv1.HTTPHeaderName(h.Name), Value: h.Value}); err != nil {
			return out, err
		}
	}
	if len(m.Cookies) > 0 {
		if err := addHeader(gwv1.HTTPHeaderMatch{Type: ptr(gwv1.HeaderMatchRegularExpression), Name: "Cookie", Value: CookieRegex(m.Cookies)}); err != nil {
			return out, err
		}
	}
	for _, q := range m.QueryParams {
		t := gwv1.QueryParamMatchExact
		if q.Type == cxv1.MatchRegularExpression {
			t = gwv1.QueryParamMatchRegularExpression
		}
		dup := false
		for _, e := range out.QueryParams {
			if string(e.Name) == q.Name {
				if *e.Type != t || e.Value != q.Value {
					return out, traffic.Errorf(cxv1.ReasonSegmentInvalid,
						"segment %s matches query parameter %s, which the route rule already matches with another value; change the segment or the route", segment, q.Name)
				}
				dup = true
			}
		}
		if !dup {
			out.QueryParams = append(out.QueryParams, gwv1.HTTPQueryParamMatch{Type: ptr(t), Name: gwv1.HTTPHeaderName(q.Name), Value: q.Value})
		}
	}
	return out, nil
}

// CookieRegex renders cookie conditions as one regular expression on the
// Cookie header ("a=1; b=2"). Each cookie must start at a cookie boundary
// and, for an exact value, end at one; every order of the cookies is
// accepted, since browsers do not promise one. The expression matches the
// whole header value, so it works with full-match and search semantics.
func CookieRegex(cookies []cxv1.CookieMatch) string {
	pieces := make([]string, len(cookies))
	for i, c := range cookies {
		v := regexp.QuoteMeta(c.Value)
		if c.Type == cxv1.MatchRegularExpression {
			v = "(?:" + c.Value + ")"
		}
		pieces[i] = regexp.QuoteMeta(c.Name) + "=" + v
	}
	perms := permutations(pieces)
	alts := make([]string, 0, len(perms))
	for _, p := range perms {
		alts = append(alts, `^(?:.*;)?\s*`+strings.Join(p, `\s*;(?:.*;)?\s*`)+`(?:\s*;.*)?$`)
	}
	if len(alts) == 1 {
		return alts[0]
	}
	return "(?:" + strings.Join(alts, ")|(?:") + ")"
}

func permutations(s []string) [][]string {
	if len(s) <= 1 {
		return [][]string{append([]string(nil), s...)}
	}
	var out [][]string
	for i := range s {
		rest := make([]string, 0, len(s)-1)
		rest = append(rest, s[:i]...)
		rest = append(rest, s[i+1:]...)
		for _, p := range permutations(rest) {
			out = append(out, append([]string{s[i]}, p...))
		}
	}
	return out
}

// ChildRouteName is the name of the child HTTPRoute of an experiment.
func ChildRouteName(experiment string) string {
	name := experiment + "-rapport"
	if len(name) > 253 {
		name = name[:253]
	}
	return name
}

// RenderChildRules renders the rules of the child route: for each segment
// that routes to a variant, one rule per parent rule that routes to the
// control. Segments at 100% control get no rule: their customers fall
// through to the parent route. It returns no rules when nothing needs
// routing, and a *traffic.Error when the result breaks a Gateway API limit.
func RenderChildRules(parent *gwv1.HTTPRoute, controlService string, plan traffic.Plan) ([]gwv1.HTTPRouteRule, error) {
	idx := ControlRules(parent, controlService)
	if len(idx) == 0 {
		return nil, traffic.Errorf(cxv1.ReasonNoControlRule,
			"HTTPRoute %s has no rule with a backendRef to the control Service %s; point a rule of the route at it (or recreate the experiment with the right control variant)", parent.Name, controlService)
	}
	var rules []gwv1.HTTPRouteRule
	total := 0
	for _, seg := range plan.Segments {
		if seg.Segment == cxv1.AllSegment || seg.Match == nil || seg.AllControl() {
			continue
		}
		for _, i := range idx {
			pr := parent.Spec.Rules[i]
			matches := pr.Matches
			if len(matches) == 0 {
				matches = []gwv1.HTTPRouteMatch{{}}
			}
			rule := gwv1.HTTPRouteRule{
				Filters:            deepCopyFilters(pr.Filters),
				Timeouts:           pr.Timeouts.DeepCopy(),
				Retry:              pr.Retry.DeepCopy(),
				SessionPersistence: SessionPersistence(plan.Stickiness),
			}
			if plan.TagRequests {
				// The segment is known per rule: tag it with a rule filter
				// (Core support), which every conformant gateway applies,
				// not only with the backendRefs' filters (Extended).
				rule.Filters = setHeaders(rule.Filters, gwv1.HTTPHeader{Name: HeaderSegment, Value: seg.Segment})
			}
			for _, m := range matches {
				mm, err := MergeMatch(m, seg.Segment, seg.Match)
				if err != nil {
					return nil, err
				}
				rule.Matches = append(rule.Matches, mm)
			}
			refs, err := RenderBackends(pr, parent.Namespace, seg, plan.TagRequests, plan.Assignment)
			if err != nil {
				return nil, err
			}
			rule.BackendRefs = refs
			if len(rule.Matches) > MaxMatchesInRule {
				return nil, traffic.Errorf(cxv1.ReasonRouteLimitExceeded,
					"segment %s on rule %d of HTTPRoute %s needs %d matches, over the Gateway API limit of %d a rule; simplify the route's matches",
					seg.Segment, i, parent.Name, len(rule.Matches), MaxMatchesInRule)
			}
			total += len(rule.Matches)
			rules = append(rules, rule)
		}
	}
	if len(rules) > MaxRules {
		return nil, traffic.Errorf(cxv1.ReasonRouteLimitExceeded,
			"the experiment needs %d route rules (%d segments x %d rules of HTTPRoute %s routing to the control), over the Gateway API limit of %d; use fewer segments or split the experiment",
			len(rules), len(rules)/len(idx), len(idx), parent.Name, MaxRules)
	}
	if total > MaxMatches {
		return nil, traffic.Errorf(cxv1.ReasonRouteLimitExceeded,
			"the experiment needs %d route matches in all, over the Gateway API limit of %d a route; use fewer segments or simplify the route's matches", total, MaxMatches)
	}
	return rules, nil
}

func deepCopyFilters(fs []gwv1.HTTPRouteFilter) []gwv1.HTTPRouteFilter {
	if fs == nil {
		return nil
	}
	out := make([]gwv1.HTTPRouteFilter, len(fs))
	for i := range fs {
		fs[i].DeepCopyInto(&out[i])
	}
	return out
}
