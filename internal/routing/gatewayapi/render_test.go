package gatewayapi

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/routing/traffic"
)

func TestCookieRegex(t *testing.T) {
	tests := []struct {
		name    string
		cookies []cxv1.CookieMatch
		match   []string
		noMatch []string
	}{
		{
			name:    "one exact cookie",
			cookies: []cxv1.CookieMatch{{Name: "tier", Value: "gold"}},
			match:   []string{"tier=gold", "a=1; tier=gold", "tier=gold; b=2", "a=1;tier=gold;b=2", "a=1;  tier=gold  ; b=2"},
			noMatch: []string{"tier=golden", "xtier=gold", "tier=gol", "a=tier=gold", "tier=silver", "", "mytier=gold; b=2"},
		},
		{
			name:    "value with regexp metacharacters is quoted",
			cookies: []cxv1.CookieMatch{{Name: "plan", Value: "pro+"}},
			match:   []string{"plan=pro+"},
			noMatch: []string{"plan=proo", "plan=pro"},
		},
		{
			name:    "two cookies in any order",
			cookies: []cxv1.CookieMatch{{Name: "tier", Value: "gold"}, {Name: "lifecycle", Value: "new"}},
			match:   []string{"tier=gold; lifecycle=new", "lifecycle=new; x=1; tier=gold", "x=1; tier=gold; y=2; lifecycle=new; z=3"},
			noMatch: []string{"tier=gold", "lifecycle=new", "tier=gold; lifecycle=newer", "tier=silver; lifecycle=new"},
		},
		{
			name:    "regular expression value",
			cookies: []cxv1.CookieMatch{{Name: "cohort", Value: "2026-(0[1-9]|1[0-2])", Type: cxv1.MatchRegularExpression}},
			match:   []string{"cohort=2026-03", "a=b; cohort=2026-11"},
			noMatch: []string{"cohort=2025-03", "cohort=2026-13"},
		},
		{
			name:    "three cookies",
			cookies: []cxv1.CookieMatch{{Name: "a", Value: "1"}, {Name: "b", Value: "2"}, {Name: "c", Value: "3"}},
			match:   []string{"c=3; a=1; b=2", "b=2; c=3; a=1", "x=0; a=1; y=0; b=2; c=3"},
			noMatch: []string{"a=1; b=2", "a=1; b=2; c=4"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expr := CookieRegex(tt.cookies)
			re, err := regexp.Compile(expr)
			if err != nil {
				t.Fatalf("CookieRegex() = %q does not compile: %v", expr, err)
			}
			for _, h := range tt.match {
				if !re.MatchString(h) {
					t.Errorf("%q does not match Cookie header %q", expr, h)
				}
			}
			for _, h := range tt.noMatch {
				if re.MatchString(h) {
					t.Errorf("%q matches Cookie header %q", expr, h)
				}
			}
		})
	}
}

func TestFormatDuration(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{24 * time.Hour, "24h"},
		{90 * time.Minute, "1h30m"},
		{1500 * time.Millisecond, "1s500ms"},
		{time.Hour + time.Second, "1h1s"},
		{0, "0s"},
		{time.Microsecond, "0s"},
	}
	pattern := regexp.MustCompile(`^([0-9]{1,5}(h|m|s|ms)){1,4}$`) // the Gateway API Duration pattern
	for _, tt := range tests {
		got := FormatDuration(tt.in)
		if got != tt.want {
			t.Errorf("FormatDuration(%s) = %q, want %q", tt.in, got, tt.want)
		}
		if !pattern.MatchString(got) {
			t.Errorf("FormatDuration(%s) = %q does not match the Gateway API duration pattern", tt.in, got)
		}
	}
}

func ref(name string) gwv1.HTTPBackendRef {
	return gwv1.HTTPBackendRef{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{
		Name: gwv1.ObjectName(name), Port: ptr(gwv1.PortNumber(8080))}}}
}

func parentRoute(rules ...gwv1.HTTPRouteRule) *gwv1.HTTPRoute {
	r := &gwv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Name: "checkout", Namespace: "shop"},
		Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "gw"}}},
			Hostnames:       []gwv1.Hostname{"shop.example.com"},
			Rules:           rules,
		},
	}
	return r
}

func prefix(p string) gwv1.HTTPRouteMatch {
	return gwv1.HTTPRouteMatch{Path: &gwv1.HTTPPathMatch{Type: ptr(gwv1.PathMatchPathPrefix), Value: ptr(p)}}
}

func segPlan(weight int32, segs ...string) traffic.Plan {
	var p traffic.Plan
	for _, s := range segs {
		p.Segments = append(p.Segments, traffic.SegmentRoute{
			Segment: s,
			Match:   &cxv1.SegmentMatch{Headers: []cxv1.HeaderMatch{{Name: "x-tier", Value: s}}},
			Backends: []traffic.Backend{
				{Variant: "control", Control: true, Service: "v1", Port: 8080, Weight: 100 - weight},
				{Variant: "one-page", Service: "v2", Port: 8080, Weight: weight},
			},
		})
	}
	return p
}

func TestControlRules(t *testing.T) {
	other := gwv1.Namespace("elsewhere")
	route := parentRoute(
		gwv1.HTTPRouteRule{BackendRefs: []gwv1.HTTPBackendRef{ref("v1")}},
		gwv1.HTTPRouteRule{BackendRefs: []gwv1.HTTPBackendRef{ref("static")}},
		gwv1.HTTPRouteRule{BackendRefs: []gwv1.HTTPBackendRef{ref("static"), ref("v1")}},
		gwv1.HTTPRouteRule{BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: "v1", Namespace: &other}}}}},
		gwv1.HTTPRouteRule{BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: "v1", Kind: ptr(gwv1.Kind("Backend")), Group: ptr(gwv1.Group("x.io"))}}}}},
	)
	if got := fmt.Sprint(ControlRules(route, "v1")); got != "[0 2]" {
		t.Fatalf("ControlRules() = %s, want [0 2] (same-namespace Services only)", got)
	}
}

func TestRenderChildRules(t *testing.T) {
	redirect := gwv1.HTTPRouteFilter{Type: gwv1.HTTPRouteFilterRequestHeaderModifier,
		RequestHeaderModifier: &gwv1.HTTPHeaderFilter{Add: []gwv1.HTTPHeader{{Name: "x-shop", Value: "1"}}}}
	twoMatches := gwv1.HTTPRouteRule{
		Matches:     []gwv1.HTTPRouteMatch{prefix("/checkout"), prefix("/pay")},
		Filters:     []gwv1.HTTPRouteFilter{redirect},
		BackendRefs: []gwv1.HTTPBackendRef{ref("v1")},
	}
	tests := []struct {
		name       string
		parent     *gwv1.HTTPRoute
		plan       traffic.Plan
		wantRules  int
		wantErr    string
		wantReason string
		check      func(t *testing.T, rules []gwv1.HTTPRouteRule)
	}{
		{
			name:      "one rule per routed segment, parent matches plus segment conditions",
			parent:    parentRoute(twoMatches, gwv1.HTTPRouteRule{Matches: []gwv1.HTTPRouteMatch{prefix("/static")}, BackendRefs: []gwv1.HTTPBackendRef{ref("static")}}),
			plan:      segPlan(10, "enterprise", "new"),
			wantRules: 2,
			check: func(t *testing.T, rules []gwv1.HTTPRouteRule) {
				r := rules[0]
				if len(r.Matches) != 2 {
					t.Fatalf("matches = %d, want the parent rule's 2", len(r.Matches))
				}
				m := r.Matches[1]
				if *m.Path.Value != "/pay" || len(m.Headers) != 1 || m.Headers[0].Value != "enterprise" || *m.Headers[0].Type != gwv1.HeaderMatchExact {
					t.Fatalf("second match = %+v, want /pay plus x-tier: enterprise", m)
				}
				if len(r.Filters) != 1 || r.Filters[0].RequestHeaderModifier.Add[0].Name != "x-shop" {
					t.Fatalf("filters = %+v, want the parent rule's filter copied", r.Filters)
				}
				if len(r.BackendRefs) != 2 || *r.BackendRefs[0].Weight != 90 || *r.BackendRefs[1].Weight != 10 || r.BackendRefs[1].Name != "v2" {
					t.Fatalf("backendRefs = %+v, want v1 90 / v2 10", r.BackendRefs)
				}
			},
		},
		{
			name:   "a segment at 100% control gets no rule",
			parent: parentRoute(twoMatches),
			plan: func() traffic.Plan {
				p := segPlan(10, "enterprise", "new")
				p.Segments[0].Backends[1].Weight = 0
				p.Segments[0].Backends[0].Weight = 100
				return p
			}(),
			wantRules: 1,
			check: func(t *testing.T, rules []gwv1.HTTPRouteRule) {
				if rules[0].Matches[0].Headers[0].Value != "new" {
					t.Fatalf("the remaining rule is for %q, want new", rules[0].Matches[0].Headers[0].Value)
				}
			},
		},
		{
			name:      "a parent rule without matches gets the default / prefix",
			parent:    parentRoute(gwv1.HTTPRouteRule{BackendRefs: []gwv1.HTTPBackendRef{ref("v1")}}),
			plan:      segPlan(5, "enterprise"),
			wantRules: 1,
			check: func(t *testing.T, rules []gwv1.HTTPRouteRule) {
				m := rules[0].Matches[0]
				if *m.Path.Value != "/" || *m.Path.Type != gwv1.PathMatchPathPrefix {
					t.Fatalf("path = %+v, want PathPrefix /", m.Path)
				}
			},
		},
		{
			name:       "no rule routes to the control",
			parent:     parentRoute(gwv1.HTTPRouteRule{BackendRefs: []gwv1.HTTPBackendRef{ref("static")}}),
			plan:       segPlan(5, "enterprise"),
			wantErr:    "no rule with a backendRef to the control Service v1",
			wantReason: cxv1.ReasonNoControlRule,
		},
		{
			name: "the segment contradicts the rule's header match",
			parent: parentRoute(gwv1.HTTPRouteRule{
				Matches:     []gwv1.HTTPRouteMatch{{Headers: []gwv1.HTTPHeaderMatch{{Name: "X-Tier", Value: "basic"}}}},
				BackendRefs: []gwv1.HTTPBackendRef{ref("v1")},
			}),
			plan:       segPlan(5, "enterprise"),
			wantErr:    "segment enterprise matches header x-tier, which the route rule already matches with another value",
			wantReason: cxv1.ReasonSegmentInvalid,
		},
		{
			name: "17 rules is over the limit",
			parent: func() *gwv1.HTTPRoute {
				var rules []gwv1.HTTPRouteRule
				for i := range 17 {
					rules = append(rules, gwv1.HTTPRouteRule{Matches: []gwv1.HTTPRouteMatch{prefix(fmt.Sprintf("/p%d", i))}, BackendRefs: []gwv1.HTTPBackendRef{ref("v1")}})
				}
				return parentRoute(rules...)
			}(),
			plan:       segPlan(5, "enterprise"),
			wantErr:    "needs 17 route rules",
			wantReason: cxv1.ReasonRouteLimitExceeded,
		},
		{
			name: "129 matches in all is over the limit",
			parent: func() *gwv1.HTTPRoute {
				var ms []gwv1.HTTPRouteMatch
				for i := range 44 {
					ms = append(ms, prefix(fmt.Sprintf("/p%d", i)))
				}
				return parentRoute(gwv1.HTTPRouteRule{Matches: ms, BackendRefs: []gwv1.HTTPBackendRef{ref("v1")}})
			}(),
			plan:       segPlan(5, "a", "b", "c"),
			wantErr:    "needs 132 route matches",
			wantReason: cxv1.ReasonRouteLimitExceeded,
		},
		{
			name: "exactly 16 rules and 128 matches fit",
			parent: func() *gwv1.HTTPRoute {
				var rules []gwv1.HTTPRouteRule
				for i := range 4 {
					var ms []gwv1.HTTPRouteMatch
					for j := range 8 {
						ms = append(ms, prefix(fmt.Sprintf("/p%d-%d", i, j)))
					}
					rules = append(rules, gwv1.HTTPRouteRule{Matches: ms, BackendRefs: []gwv1.HTTPBackendRef{ref("v1")}})
				}
				return parentRoute(rules...)
			}(),
			plan:      segPlan(5, "a", "b", "c", "d"),
			wantRules: 16,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rules, err := RenderChildRules(tt.parent, "v1", tt.plan)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				if got := traffic.ReasonOf(err, ""); got != tt.wantReason {
					t.Fatalf("reason = %q, want %q", got, tt.wantReason)
				}
				return
			}
			if err != nil {
				t.Fatalf("RenderChildRules(): %v", err)
			}
			if len(rules) != tt.wantRules {
				t.Fatalf("rules = %d, want %d", len(rules), tt.wantRules)
			}
			if tt.check != nil {
				tt.check(t, rules)
			}
		})
	}
}

func TestRenderChildRulesDoesNotAliasTheParent(t *testing.T) {
	parent := parentRoute(gwv1.HTTPRouteRule{
		Matches:     []gwv1.HTTPRouteMatch{prefix("/checkout")},
		Filters:     []gwv1.HTTPRouteFilter{{Type: gwv1.HTTPRouteFilterRequestHeaderModifier, RequestHeaderModifier: &gwv1.HTTPHeaderFilter{Add: []gwv1.HTTPHeader{{Name: "x", Value: "1"}}}}},
		BackendRefs: []gwv1.HTTPBackendRef{ref("v1")},
	})
	before, _ := json.Marshal(parent)
	p := segPlan(10, "enterprise")
	p.TagRequests = true
	p.Stickiness = &cxv1.Stickiness{Cookie: &cxv1.CookieStickiness{Name: "cx"}}
	rules, err := RenderChildRules(parent, "v1", p)
	if err != nil {
		t.Fatal(err)
	}
	rules[0].Filters[0].RequestHeaderModifier.Add[0].Value = "changed"
	rules[0].BackendRefs[0].Filters = nil
	after, _ := json.Marshal(parent)
	if string(before) != string(after) {
		t.Fatalf("rendering changed the parent route:\n%s\n%s", before, after)
	}
}

func TestRenderBackendsTags(t *testing.T) {
	rule := gwv1.HTTPRouteRule{BackendRefs: []gwv1.HTTPBackendRef{{
		BackendRef: ref("v1").BackendRef,
		Filters: []gwv1.HTTPRouteFilter{{Type: gwv1.HTTPRouteFilterRequestHeaderModifier,
			RequestHeaderModifier: &gwv1.HTTPHeaderFilter{Set: []gwv1.HTTPHeader{{Name: "X-Rapport-Variant", Value: "stale"}, {Name: "x-app", Value: "1"}}}}},
	}}}
	refs, err := RenderBackends(rule, "shop", segPlan(20, "enterprise").Segments[0], true, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctl := refs[0]
	if len(ctl.Filters) != 1 {
		t.Fatalf("control filters = %d, want the one RequestHeaderModifier merged", len(ctl.Filters))
	}
	set := ctl.Filters[0].RequestHeaderModifier.Set
	want := `[{X-Rapport-Variant control} {x-app 1} {x-rapport-segment enterprise}]`
	if fmt.Sprint(set) != want {
		t.Fatalf("control headers = %v, want %s", set, want)
	}
	if *ctl.Weight != 80 || *refs[1].Weight != 20 {
		t.Fatalf("weights = %d/%d, want 80/20", *ctl.Weight, *refs[1].Weight)
	}
	if fmt.Sprint(refs[1].Filters[0].RequestHeaderModifier.Set) != `[{x-rapport-variant one-page} {x-rapport-segment enterprise}]` {
		t.Fatalf("variant headers = %v", refs[1].Filters[0].RequestHeaderModifier.Set)
	}
}

// The segment tag goes on the child rule too: filters on backendRefs are
// Extended support and some gateways (Traefik v3.6) drop them, while rule
// filters are Core (found by test/e2e through a real proxy).
func TestRenderChildRulesTagsTheSegmentOnTheRule(t *testing.T) {
	rhm := func(set ...gwv1.HTTPHeader) gwv1.HTTPRouteFilter {
		return gwv1.HTTPRouteFilter{Type: gwv1.HTTPRouteFilterRequestHeaderModifier, RequestHeaderModifier: &gwv1.HTTPHeaderFilter{Set: set}}
	}
	rewrite := gwv1.HTTPRouteFilter{Type: gwv1.HTTPRouteFilterURLRewrite, URLRewrite: &gwv1.HTTPURLRewriteFilter{Hostname: ptr(gwv1.PreciseHostname("internal"))}}
	tests := []struct {
		name   string
		parent []gwv1.HTTPRouteFilter
		tag    bool
		want   string
	}{
		{name: "no tags, no filters", want: `[]`},
		{name: "no tags keeps the parent's filters", parent: []gwv1.HTTPRouteFilter{rhm(gwv1.HTTPHeader{Name: "x-app", Value: "1"})},
			want: `[RequestHeaderModifier[{x-app 1}]]`},
		{name: "a filter of its own", tag: true, want: `[RequestHeaderModifier[{x-rapport-segment enterprise}]]`},
		{name: "merged into the parent's header filter", tag: true, parent: []gwv1.HTTPRouteFilter{rhm(gwv1.HTTPHeader{Name: "x-app", Value: "1"})},
			want: `[RequestHeaderModifier[{x-app 1} {x-rapport-segment enterprise}]]`},
		{name: "replaces a stale value", tag: true, parent: []gwv1.HTTPRouteFilter{rhm(gwv1.HTTPHeader{Name: "X-Rapport-Segment", Value: "forged"})},
			want: `[RequestHeaderModifier[{X-Rapport-Segment enterprise}]]`},
		{name: "after the parent's other filters", tag: true, parent: []gwv1.HTTPRouteFilter{rewrite},
			want: `[URLRewrite[] RequestHeaderModifier[{x-rapport-segment enterprise}]]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent := parentRoute(gwv1.HTTPRouteRule{Matches: []gwv1.HTTPRouteMatch{prefix("/checkout")}, Filters: tt.parent, BackendRefs: []gwv1.HTTPBackendRef{ref("v1")}})
			before, _ := json.Marshal(parent)
			p := segPlan(20, "enterprise")
			p.TagRequests = tt.tag
			rules, err := RenderChildRules(parent, "v1", p)
			if err != nil {
				t.Fatal(err)
			}
			parts := []string{}
			for _, f := range rules[0].Filters {
				var set []gwv1.HTTPHeader
				if f.RequestHeaderModifier != nil {
					set = f.RequestHeaderModifier.Set
				}
				parts = append(parts, fmt.Sprintf("%s%v", f.Type, set))
			}
			if got := "[" + strings.Join(parts, " ") + "]"; got != tt.want {
				t.Errorf("rule filters = %s, want %s", got, tt.want)
			}
			if after, _ := json.Marshal(parent); string(before) != string(after) {
				t.Errorf("rendering changed the parent route:\n%s\n%s", before, after)
			}
		})
	}
}

func TestSessionPersistence(t *testing.T) {
	if SessionPersistence(nil) != nil {
		t.Fatal("no stickiness must render no sessionPersistence")
	}
	sp := SessionPersistence(&cxv1.Stickiness{Cookie: &cxv1.CookieStickiness{Name: "cx"}})
	if *sp.CookieConfig.LifetimeType != gwv1.SessionCookieLifetimeType || sp.AbsoluteTimeout != nil {
		t.Fatalf("without a lifetime = %+v, want a session cookie", sp)
	}
	sp = SessionPersistence(&cxv1.Stickiness{Cookie: &cxv1.CookieStickiness{Name: "cx", Lifetime: &metav1.Duration{Duration: 36 * time.Hour}}})
	if *sp.CookieConfig.LifetimeType != gwv1.PermanentCookieLifetimeType || string(*sp.AbsoluteTimeout) != "36h" {
		t.Fatalf("with a lifetime = %+v, want a permanent cookie of 36h", sp)
	}
}

func testCookie(name string) *traffic.AssignmentCookie {
	return &traffic.AssignmentCookie{Name: name, MaxAge: time.Hour, Secure: true,
		Value: func(segment, variant string) string { return "1~shop~checkout~1~" + segment + "~" + variant + "~0~tag" }}
}

func TestRenderBackendsAssignmentCookie(t *testing.T) {
	appCookie := gwv1.HTTPHeader{Name: "Set-Cookie", Value: "app=1"}
	tests := []struct {
		name    string
		control []gwv1.HTTPRouteFilter
		tag     bool
		wantErr string
	}{{
		name: "a ResponseHeaderModifier on each reference",
	}, {
		name: "merged into the control's own ResponseHeaderModifier, keeping its set and remove",
		control: []gwv1.HTTPRouteFilter{{Type: gwv1.HTTPRouteFilterResponseHeaderModifier, ResponseHeaderModifier: &gwv1.HTTPHeaderFilter{
			Set: []gwv1.HTTPHeader{{Name: "Cache-Control", Value: "no-store"}}, Remove: []string{"Server"}, Add: []gwv1.HTTPHeader{{Name: "X-App", Value: "1"}}}}},
	}, {
		name: "with tags: one filter of each kind",
		tag:  true,
	}, {
		name: "the control already adds a Set-Cookie: an error naming the fix",
		control: []gwv1.HTTPRouteFilter{{Type: gwv1.HTTPRouteFilterResponseHeaderModifier, ResponseHeaderModifier: &gwv1.HTTPHeaderFilter{
			Add: []gwv1.HTTPHeader{appCookie}}}},
		wantErr: "already adds a Set-Cookie response header",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rule := gwv1.HTTPRouteRule{BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: ref("v1").BackendRef, Filters: tt.control}}}
			before, _ := json.Marshal(rule)
			refs, err := RenderBackends(rule, "shop", segPlan(20, "enterprise").Segments[0], tt.tag, testCookie("rapport-checkout"))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || traffic.ReasonOf(err, "") != cxv1.ReasonAssignmentCookieConflict {
					t.Fatalf("error = %v, want %q with reason %s", err, tt.wantErr, cxv1.ReasonAssignmentCookieConflict)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if after, _ := json.Marshal(rule); string(after) != string(before) {
				t.Fatalf("rendering changed the rule:\n%s\n%s", before, after)
			}
			for i, variant := range []string{"control", "one-page"} {
				var mods []*gwv1.HTTPHeaderFilter
				kinds := map[gwv1.HTTPRouteFilterType]int{}
				for _, f := range refs[i].Filters {
					kinds[f.Type]++
					if f.Type == gwv1.HTTPRouteFilterResponseHeaderModifier {
						mods = append(mods, f.ResponseHeaderModifier)
					}
				}
				if len(mods) != 1 {
					t.Fatalf("%s: %d ResponseHeaderModifier filters, want 1", variant, len(mods))
				}
				want := "rapport-checkout=1~shop~checkout~1~enterprise~" + variant + "~0~tag; Path=/; Max-Age=3600; SameSite=Lax; Secure"
				var cookies []string
				for _, h := range mods[0].Add {
					if h.Name == HeaderSetCookie {
						cookies = append(cookies, h.Value)
					}
				}
				if len(cookies) != 1 || cookies[0] != want {
					t.Fatalf("%s: Set-Cookie added = %q, want [%q]", variant, cookies, want)
				}
				if len(mods[0].Set) != 0 && i == 1 {
					t.Fatalf("%s: the variant's filter sets headers: %v", variant, mods[0].Set)
				}
				if tt.tag && kinds[gwv1.HTTPRouteFilterRequestHeaderModifier] != 1 {
					t.Fatalf("%s: filters %v, want one RequestHeaderModifier too", variant, kinds)
				}
			}
			if tt.control != nil {
				m := refs[0].Filters[0].ResponseHeaderModifier
				if fmt.Sprint(m.Set) != "[{Cache-Control no-store}]" || fmt.Sprint(m.Remove) != "[Server]" || len(m.Add) != 2 || m.Add[0].Name != "X-App" {
					t.Fatalf("the control's own modifier was not kept: %+v", m)
				}
			}
		})
	}
}

func TestRenderChildRulesAssignmentCookiePerSegment(t *testing.T) {
	parent := parentRoute(
		gwv1.HTTPRouteRule{Matches: []gwv1.HTTPRouteMatch{prefix("/checkout")}, BackendRefs: []gwv1.HTTPBackendRef{ref("v1")}},
		gwv1.HTTPRouteRule{Matches: []gwv1.HTTPRouteMatch{prefix("/cart")}, BackendRefs: []gwv1.HTTPBackendRef{ref("v1")}},
	)
	p := segPlan(30, "enterprise", "smb")
	p.Assignment = testCookie("c")
	rules, err := RenderChildRules(parent, "v1", p)
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 4 {
		t.Fatalf("rules = %d, want 2 segments x 2 parent rules", len(rules))
	}
	for i, r := range rules {
		seg := []string{"enterprise", "enterprise", "smb", "smb"}[i]
		for j, b := range r.BackendRefs {
			variant := []string{"control", "one-page"}[j]
			got := b.Filters[0].ResponseHeaderModifier.Add[0].Value
			if !strings.HasPrefix(got, "c=1~shop~checkout~1~"+seg+"~"+variant+"~") {
				t.Errorf("rule %d backend %d: cookie %q, want segment %s variant %s", i, j, got, seg, variant)
			}
		}
	}
	// Rendering is deterministic: an unchanged plan renders an equal route
	// (so the router writes nothing).
	again, _ := RenderChildRules(parent, "v1", p)
	if a, b := mustMarshal(t, rules), mustMarshal(t, again); a != b {
		t.Fatal("two renderings of the same plan differ")
	}
}

func mustMarshal(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
