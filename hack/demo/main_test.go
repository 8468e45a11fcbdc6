package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/assignment"
	"github.com/rapport-dev/rapport/internal/notify"
)

func TestRefusals(t *testing.T) {
	for _, tc := range []struct {
		codes map[int]int64
		want  string
	}{
		{map[int]int64{202: 100}, ""},
		{map[int]int64{202: 100, 409: 0}, ""},
		{map[int]int64{202: 100, 409: 40}, "; 40 refused with 409: the experiment was no longer running"},
		{map[int]int64{0: 20, 202: 100, 503: 5}, "; 20 not delivered (transport errors), 5 refused with 503: collector busy"},
		{map[int]int64{400: 1}, "; 1 refused with 400: Bad Request"},
	} {
		if got := refusals(tc.codes); got != tc.want {
			t.Errorf("refusals(%v) = %q; want %q", tc.codes, got, tc.want)
		}
	}
}

func TestReceiver(t *testing.T) {
	r, err := startReceiver()
	if err != nil {
		t.Fatal(err)
	}
	defer r.stop()
	post := func(body string, sign []byte) int {
		req, _ := http.NewRequest(http.MethodPost, r.url, strings.NewReader(body))
		if sign != nil {
			req.Header.Set(notify.HeaderSignature, notify.Sign(sign, []byte(body)))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	doc := `{"id":"e1","trigger":"on-rolled-back","segment":"enterprise","variant":"one-page","message":"one-page rolled back"}`
	if code := post(doc, nil); code != http.StatusUnauthorized {
		t.Errorf("unsigned: %d, want 401", code)
	}
	if code := post(doc, []byte("another key")); code != http.StatusUnauthorized {
		t.Errorf("signed with another key: %d, want 401", code)
	}
	for range 2 { // at least once: the second delivery of e1 is a duplicate
		if code := post(doc, r.key); code != http.StatusNoContent {
			t.Errorf("signed: %d, want 204", code)
		}
	}
	got, rejected := r.wait(1, 0)
	if len(got) != 1 || got[0].Variant != "one-page" || got[0].Trigger != "on-rolled-back" || rejected != 2 {
		t.Errorf("received %+v, rejected %d; want one on-rolled-back notification and 2 rejections", got, rejected)
	}
}

// TestSegmentOfFollowsShop: segmentOf recognises each CustomerSegment of
// hack/demo/shop.yaml from its own matches, so the two cannot drift apart.
func TestSegmentOfFollowsShop(t *testing.T) {
	data, err := os.ReadFile("shop.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	found := 0
	for {
		var seg cxv1.CustomerSegment
		if err := dec.Decode(&seg); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if seg.Kind != "CustomerSegment" {
			continue
		}
		found++
		m := seg.Spec.Match
		if len(m.QueryParams) > 0 {
			t.Errorf("segment %s matches query parameters, which segmentOf does not read", seg.Name)
		}
		r := httptest.NewRequest(http.MethodGet, surveyPath, nil)
		for _, h := range m.Headers {
			r.Header.Set(h.Name, h.Value)
		}
		for _, c := range m.Cookies {
			r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
		}
		if got := segmentOf(r); got != seg.Name {
			t.Errorf("a request matching CustomerSegment %s is in segment %q by segmentOf", seg.Name, got)
		}
	}
	if found != 2 {
		t.Errorf("%d CustomerSegments in shop.yaml, want the demo's 2", found)
	}
}

func TestSegmentOf(t *testing.T) {
	for _, tc := range []struct {
		header, cookie, want string
	}{
		{"", "", ""},
		{"enterprise", "", "enterprise"},
		{"smb", "", ""},
		{"", "new", "new-customers"},
		{"", "old", ""},
		{"enterprise", "new", "enterprise"}, // the demo checks enterprise first; its shoppers are never both
	} {
		r := httptest.NewRequest(http.MethodGet, "/checkout/survey", nil)
		if tc.header != "" {
			r.Header.Set("x-customer-tier", tc.header)
		}
		if tc.cookie != "" {
			r.AddCookie(&http.Cookie{Name: "lifecycle", Value: tc.cookie})
		}
		if got := segmentOf(r); got != tc.want {
			t.Errorf("segmentOf(tier %q, lifecycle %q) = %q, want %q", tc.header, tc.cookie, got, tc.want)
		}
	}
}

// TestSurveyPage: the page of a variant includes the survey intercept and,
// for a customer in the experiment, sets an assignment the collector
// accepts (signed with the experiment's key, naming the run, segment,
// variant and epoch); customers in no segment, and pages served after the
// experiment ended, get no cookie.
func TestSurveyPage(t *testing.T) {
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = cxv1.AddToScheme(scheme)
	key := []byte("0123456789abcdef0123456789abcdef")
	exp := &cxv1.CXExperiment{ObjectMeta: metav1.ObjectMeta{Namespace: demoNS, Name: expName}}
	exp.Status.Run = 3
	exp.Status.Phase = cxv1.PhaseProgressing
	exp.Spec.Variants = []cxv1.Variant{{Name: "control", Control: true}, {Name: "one-page"}}
	exp.Status.Segments = []cxv1.SegmentStatus{
		// enterprise: one-page rolled back, every customer on the control.
		{Name: "enterprise", Epoch: 1, Variants: []cxv1.VariantStatus{{Name: "control", Weight: 100}, {Name: "one-page", Weight: 0}}},
		{Name: "new-customers", Epoch: 2, Variants: []cxv1.VariantStatus{{Name: "control", Weight: 80}, {Name: "one-page", Weight: 20}}},
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: demoNS, Name: assignment.SecretName(expName)},
		Data: map[string][]byte{cxv1.AssignmentKeyDataKey: key}}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(exp, secret).WithStatusSubresource(exp).Build()
	d := &demo{c: c}
	page := d.surveyPage("checkout-v2", "one-page", "the one-page checkout")

	// get serves the page to a customer: "new" (lifecycle cookie),
	// "enterprise" (tier header) or "" (in no segment).
	get := func(customer string) *http.Response {
		r := httptest.NewRequest(http.MethodGet, surveyPath, nil)
		switch customer {
		case "enterprise":
			r.Header.Set("x-customer-tier", "enterprise")
		case "new":
			r.AddCookie(&http.Cookie{Name: "lifecycle", Value: "new"})
		}
		w := httptest.NewRecorder()
		page.ServeHTTP(w, r)
		return w.Result()
	}
	resp := get("new")
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	for _, want := range []string{
		`src="http://feedback.example.com:8000/v1/survey.js"`, `data-namespace="shop"`, `data-experiment="checkout-redesign"`,
		`data-trigger="click:#place-order"`, `data-variant="one-page"`, `id="place-order"`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("the page lacks %s:\n%s", want, body)
		}
	}
	cookies := resp.Cookies()
	if len(cookies) != 1 || cookies[0].Name != assignment.CookieName(expName) {
		t.Fatalf("cookies %v, want the assignment cookie", cookies)
	}
	got, err := assignment.Verify(key, cookies[0].Value)
	if err != nil {
		t.Fatalf("the cookie does not verify with the experiment's key: %v", err)
	}
	want := assignment.Assignment{Namespace: demoNS, Experiment: expName, Run: 3, Segment: "new-customers", Variant: "one-page", Epoch: 2}
	if got != want {
		t.Errorf("assignment %+v, want %+v", got, want)
	}
	if _, err := assignment.Verify([]byte("another key, 32 bytes long......"), cookies[0].Value); err == nil {
		t.Error("the cookie verifies with another key")
	}

	if resp := get(""); len(resp.Cookies()) != 0 || resp.StatusCode != http.StatusOK {
		t.Errorf("a customer in no segment got %d %v, want the page without a cookie", resp.StatusCode, resp.Cookies())
	}
	if resp := get("enterprise"); len(resp.Cookies()) != 0 || resp.StatusCode != http.StatusOK {
		t.Errorf("a customer of a segment routed entirely to the control got %d %v, want the page without a cookie", resp.StatusCode, resp.Cookies())
	}
	exp.Status.Phase = cxv1.PhaseSucceeded
	if err := c.Status().Update(context.Background(), exp); err != nil {
		t.Fatal(err)
	}
	if resp := get("new"); len(resp.Cookies()) != 0 {
		t.Errorf("a page served after the experiment ended set %v", resp.Cookies())
	}
}
