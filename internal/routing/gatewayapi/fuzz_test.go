package gatewayapi

import (
	"regexp"
	"strings"
	"testing"
	"time"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/routing/traffic"
)

// FuzzCookieRegex: for any cookie names and exact values, the rendered
// expression compiles (RE2) and matches a Cookie header that carries the
// cookies in another order among other cookies, and not one where a value
// differs.
func FuzzCookieRegex(f *testing.F) {
	f.Add("tier", "gold", "lifecycle", "new")
	f.Add("a.b", "x+y", "c", "(")
	f.Add("t", "", "u", "v")
	f.Fuzz(func(t *testing.T, n1, v1, n2, v2 string) {
		valid := regexp.MustCompile(`^[A-Za-z0-9!#$%&'*+\-.^_|~]{1,64}$`) // the CRD's cookie name pattern
		value := regexp.MustCompile(`^[A-Za-z0-9!#$%&'()*+\-./:<=>?@\[\]^_{|}~]{1,64}$`)
		if !valid.MatchString(n1) || !valid.MatchString(n2) || n1 == n2 || !value.MatchString(v1) || !value.MatchString(v2) {
			return
		}
		expr := CookieRegex([]cxv1.CookieMatch{{Name: n1, Value: v1}, {Name: n2, Value: v2}})
		re, err := regexp.Compile(expr)
		if err != nil {
			t.Fatalf("CookieRegex = %q does not compile: %v", expr, err)
		}
		header := "z=1; " + n2 + "=" + v2 + "; y=2; " + n1 + "=" + v1
		if !re.MatchString(header) {
			t.Fatalf("%q does not match %q", expr, header)
		}
		if bad := n1 + "=" + v1 + "X; " + n2 + "=" + v2; re.MatchString(bad) && !strings.HasSuffix(v1, "X") {
			t.Fatalf("%q matches %q where %s has another value", expr, bad, n1)
		}
	})
}

// FuzzRenderChildRules: arbitrary segment conditions and weights never
// panic the renderer, and what it renders respects the Gateway API limits,
// keeps each rule's weights summing to 100 and, with an assignment cookie,
// adds exactly one Set-Cookie of that name to every backend's responses,
// within the Gateway API's header value limit.
func FuzzRenderChildRules(f *testing.F) {
	f.Add("x-tier", "gold", "plan", "pro", "tier", "gold", int32(10), uint8(1), uint8(2), "")
	f.Add("Cookie", "a=1", "", "", "c", "d", int32(50), uint8(16), uint8(1), "")
	f.Add("x", "y", "q", "r", "", "", int32(100), uint8(3), uint8(9), "")
	f.Add("x-tier", "gold", "", "", "", "", int32(5), uint8(2), uint8(3), "rapport-checkout")
	f.Add("x", "y", "q", "r", "c", "d", int32(0), uint8(16), uint8(17), "cx~a.b")
	f.Fuzz(func(t *testing.T, hName, hValue, qName, qValue, cName, cValue string, weight int32, rules, segments uint8, cookie string) {
		if weight < 0 || weight > 100 {
			return
		}
		if cookie != "" && !regexp.MustCompile(`^[A-Za-z0-9!#$%&'*+\-.^_|~]{1,128}$`).MatchString(cookie) { // the CRD's pattern
			return
		}
		var route []gwv1.HTTPRouteRule
		for i := range int(rules%20) + 1 {
			route = append(route, gwv1.HTTPRouteRule{
				Matches:     []gwv1.HTTPRouteMatch{prefix("/p" + string(rune('a'+i%26)))},
				BackendRefs: []gwv1.HTTPBackendRef{ref("v1")},
			})
		}
		parent := parentRoute(route...)
		m := cxv1.SegmentMatch{}
		if hName != "" {
			m.Headers = []cxv1.HeaderMatch{{Name: hName, Value: hValue}}
		}
		if qName != "" {
			m.QueryParams = []cxv1.QueryParamMatch{{Name: qName, Value: qValue}}
		}
		if cName != "" {
			m.Cookies = []cxv1.CookieMatch{{Name: cName, Value: cValue}}
		}
		var p traffic.Plan
		if cookie != "" {
			p.Assignment = &traffic.AssignmentCookie{Name: cookie, MaxAge: time.Hour, Secure: true, Value: func(segment, variant string) string {
				// As long as package assignment makes it: names of at most 253 characters.
				return strings.Repeat("x", 300) + "~" + segment + "~" + variant
			}}
		}
		for i := range int(segments%18) + 1 {
			p.Segments = append(p.Segments, traffic.SegmentRoute{
				Segment: "s" + string(rune('a'+i)), Match: &m,
				Backends: []traffic.Backend{
					{Variant: "control", Control: true, Service: "v1", Port: 8080, Weight: 100 - weight},
					{Variant: "b", Service: "v2", Port: 8080, Weight: weight},
				},
			})
		}
		out, err := RenderChildRules(parent, "v1", p)
		if err != nil {
			if traffic.ReasonOf(err, "") == "" {
				t.Fatalf("an error without a condition reason: %v", err)
			}
			return
		}
		if len(out) > MaxRules {
			t.Fatalf("%d rules rendered, over the limit", len(out))
		}
		total := 0
		for _, r := range out {
			total += len(r.Matches)
			var sum int32
			for _, b := range r.BackendRefs {
				sum += *b.Weight
				if p.Assignment != nil {
					checkAssignmentCookie(t, b, cookie)
				}
			}
			if sum != 100 {
				t.Fatalf("a rule's weights sum to %d", sum)
			}
		}
		if total > MaxMatches {
			t.Fatalf("%d matches rendered, over the limit", total)
		}
	})
}

// checkAssignmentCookie fails unless b adds exactly one Set-Cookie named
// name to its responses, in one ResponseHeaderModifier, within the Gateway
// API's limit of 4096 characters a header value.
func checkAssignmentCookie(t *testing.T, b gwv1.HTTPBackendRef, name string) {
	t.Helper()
	var found []string
	mods := 0
	for _, f := range b.Filters {
		if f.Type != gwv1.HTTPRouteFilterResponseHeaderModifier {
			continue
		}
		mods++
		for _, h := range f.ResponseHeaderModifier.Add {
			if strings.EqualFold(string(h.Name), HeaderSetCookie) {
				found = append(found, h.Value)
			}
		}
	}
	if mods != 1 || len(found) != 1 || !strings.HasPrefix(found[0], name+"=") || len(found[0]) > 4096 {
		t.Fatalf("backend %s: %d ResponseHeaderModifiers adding Set-Cookie %q, want one cookie %s within 4096 characters", b.Name, mods, found, name)
	}
}
