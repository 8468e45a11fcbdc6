package controller

import (
	"strings"
	"testing"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

func TestValidateSegment(t *testing.T) {
	for _, tc := range []struct {
		name    string
		match   cxv1.SegmentMatch
		wantErr string
	}{
		{"exact matches need no check", cxv1.SegmentMatch{Headers: []cxv1.HeaderMatch{{Name: "x-tier", Value: "(unbalanced"}}}, ""},
		{"a valid header regex", cxv1.SegmentMatch{Headers: []cxv1.HeaderMatch{{Name: "x-tier", Type: cxv1.MatchRegularExpression, Value: "^(gold|platinum)$"}}}, ""},
		{"a header regex that does not compile", cxv1.SegmentMatch{Headers: []cxv1.HeaderMatch{{Name: "x-tier", Type: cxv1.MatchRegularExpression, Value: "(gold"}}},
			"spec.match.headers[x-tier].value is not a valid RE2 regular expression"},
		{"a lookahead (not RE2)", cxv1.SegmentMatch{QueryParams: []cxv1.QueryParamMatch{{Name: "plan", Type: cxv1.MatchRegularExpression, Value: "(?=pro)"}}},
			"spec.match.queryParams[plan].value is not a valid RE2 regular expression"},
		{"a cookie regex", cxv1.SegmentMatch{Cookies: []cxv1.CookieMatch{{Name: "lifecycle", Type: cxv1.MatchRegularExpression, Value: "new|trial"}}}, ""},
		{"a cookie regex across cookies", cxv1.SegmentMatch{Cookies: []cxv1.CookieMatch{{Name: "lifecycle", Type: cxv1.MatchRegularExpression, Value: "new;.*"}}},
			"spec.match.cookies[lifecycle].value must not contain ';'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateSegment(&cxv1.CustomerSegment{Spec: cxv1.CustomerSegmentSpec{Match: tc.match}})
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("ValidateSegment: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("ValidateSegment = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}
