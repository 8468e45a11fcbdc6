package validation

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// source is a valid FeedbackSource in YAML; the table breaks one part at a time.
const source = `
apiVersion: cx.rapport.dev/v1alpha1
kind: FeedbackSource
metadata: {name: survey}
spec:
  provider: Typeform
  secretRef: {name: typeform-webhook}
`

func editSource(change func(spec map[string]any)) *unstructured.Unstructured {
	u := decode(source)
	change(u.Object["spec"].(map[string]any))
	return u
}

var _ = Describe("CRD validation of the survey intake", func() {
	create := func(u *unstructured.Unstructured) error {
		u.SetNamespace(newNamespace("intake"))
		return k8s.Create(ctx, u)
	}

	It("accepts a FeedbackSource per provider, and browser answers with an assignment cookie", func() {
		Expect(create(decode(source))).To(Succeed())
		Expect(create(editSource(func(s map[string]any) {
			s["provider"] = "Generic"
			s["generic"] = map[string]any{"auth": "HMACSHA256", "header": "X-Export-Signature"}
			s["mapping"] = map[string]any{"eventID": "body.responseId", "score": "body.values.QID1 + 1"}
		}))).To(Succeed())
		exp := edit(func(spec map[string]any) {
			set("traffic.gatewayAPI.assignmentCookie", map[string]any{})(spec)
			set("satisfaction.source.collector.browser", map[string]any{"allowedOrigins": []any{"https://shop.example.com", "http://localhost:8080"}})(spec)
		})
		Expect(create(exp)).To(Succeed())
		c := exp.Object["spec"].(map[string]any)["traffic"].(map[string]any)["gatewayAPI"].(map[string]any)["assignmentCookie"].(map[string]any)
		Expect(c).To(HaveKeyWithValue("maxAge", "24h"), "defaulted")
		Expect(c).To(HaveKeyWithValue("secure", true), "defaulted")
	})

	DescribeTable("rejects a bad FeedbackSource or browser setting with a message naming the field and the fix",
		func(u *unstructured.Unstructured, want string) {
			err := create(u)
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring(want))
		},
		Entry("an unknown provider", editSource(set("provider", "Qualtrics")), `spec.provider: Unsupported value: "Qualtrics"`),
		Entry("Generic without auth", editSource(set("provider", "Generic")), "spec.generic is required with provider Generic: set generic.auth to Token or HMACSHA256"),
		Entry("generic on another provider", editSource(set("generic", map[string]any{"auth": "Token"})), "spec.generic applies to provider Generic only"),
		Entry("an unknown generic auth", editSource(func(s map[string]any) {
			s["provider"] = "Generic"
			s["generic"] = map[string]any{"auth": "Basic"}
		}), `spec.generic.auth: Unsupported value: "Basic"`),
		Entry("a header that is not a header name", editSource(func(s map[string]any) {
			s["provider"] = "Generic"
			s["generic"] = map[string]any{"auth": "Token", "header": "X Token"}
		}), "spec.generic.header"),
		Entry("no Secret", editSource(func(s map[string]any) { delete(s, "secretRef") }), "spec.secretRef: Required value"),
		Entry("an empty mapping expression", editSource(set("mapping", map[string]any{"score": ""})), "spec.mapping.score"),
		Entry("browser answers without origins", edit(set("satisfaction.source.collector.browser", map[string]any{})),
			"spec.satisfaction.source.collector.browser: list the origins of your pages in allowedOrigins"),
		Entry("an origin with a path", edit(set("satisfaction.source.collector.browser", map[string]any{"allowedOrigins": []any{"https://shop.example.com/checkout"}})),
			"spec.satisfaction.source.collector.browser.allowedOrigins[0]"),
		Entry("a wildcard origin", edit(set("satisfaction.source.collector.browser", map[string]any{"allowedOrigins": []any{"*"}})),
			"spec.satisfaction.source.collector.browser.allowedOrigins[0]"),
		Entry("a cookie lifetime under a minute", edit(set("traffic.gatewayAPI.assignmentCookie", map[string]any{"maxAge": "30s"})),
			"spec.traffic.gatewayAPI.assignmentCookie.maxAge must be between 1m and 8760h"),
		Entry("a cookie name with a space", edit(set("traffic.gatewayAPI.assignmentCookie", map[string]any{"name": "rapport cookie"})),
			"spec.traffic.gatewayAPI.assignmentCookie.name"),
	)
})
