package controller

import (
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/assignment"
	"github.com/rapport-dev/rapport/internal/routing/gatewayapi"
)

var _ = Describe("The signed assignment cookie", func() {
	It("is set by the child route for each variant, signed with a key Secret the experiment owns", func() {
		s := newShop()
		exp := s.experiment("checkout-redesign", "enterprise")
		exp.Spec.Traffic.GatewayAPI.AssignmentCookie = &cxv1.AssignmentCookie{Secure: ptr(false)}
		s.start(exp)
		exp = s.get("checkout-redesign")

		secret := &corev1.Secret{}
		Eventually(func() error {
			return k8s.Get(ctx, keyOf(s.ns, assignment.SecretName("checkout-redesign")), secret)
		}).Should(Succeed())
		Expect(metav1.IsControlledBy(secret, exp)).To(BeTrue(), "owned by the experiment, so it goes with it")
		Expect(secret.Immutable).To(HaveValue(BeTrue()))
		Expect(secret.Labels).To(HaveKeyWithValue(cxv1.LabelAssignmentKey, "true"))
		key := secret.Data[cxv1.AssignmentKeyDataKey]
		Expect(key).To(HaveLen(assignment.KeyBytes))

		var child *gwv1.HTTPRoute
		Eventually(func(g Gomega) {
			var err error
			child, err = s.getRoute(gatewayapi.ChildRouteName("checkout-redesign"))
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(child.Spec.Rules).NotTo(BeEmpty())
		}).Should(Succeed())
		seen := map[string]bool{}
		for _, b := range child.Spec.Rules[0].BackendRefs {
			var cookies []string
			for _, f := range b.Filters {
				if m := f.ResponseHeaderModifier; m != nil {
					for _, h := range m.Add {
						if h.Name == "Set-Cookie" {
							cookies = append(cookies, h.Value)
						}
					}
				}
			}
			Expect(cookies).To(HaveLen(1), "backend %s", b.Name)
			Expect(cookies[0]).To(HavePrefix("rapport-checkout-redesign="))
			Expect(cookies[0]).To(HaveSuffix("; Path=/; Max-Age=86400; SameSite=Lax"))
			value := strings.TrimPrefix(strings.SplitN(cookies[0], ";", 2)[0], "rapport-checkout-redesign=")
			a, err := assignment.Verify(key, value)
			Expect(err).NotTo(HaveOccurred())
			Expect(a.Namespace).To(Equal(s.ns))
			Expect(a.Experiment).To(Equal("checkout-redesign"))
			Expect(a.Run).To(Equal(exp.Status.Run))
			Expect(a.Segment).To(Equal("enterprise"))
			want := map[gwv1.ObjectName]string{"checkout-v1": "control", "checkout-v2": "one-page"}[b.Name]
			Expect(a.Variant).To(Equal(want), "the cookie of backend %s names its variant", b.Name)
			seen[a.Variant] = true
		}
		Expect(seen).To(HaveLen(2))
	})
})
