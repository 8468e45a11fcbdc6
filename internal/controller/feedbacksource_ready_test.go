package controller

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

func TestFeedbackSourceReady(t *testing.T) {
	src := func(p cxv1.FeedbackProvider, m *cxv1.FeedbackMapping, g *cxv1.GenericWebhook) *cxv1.FeedbackSource {
		return &cxv1.FeedbackSource{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "nps", Generation: 3},
			Spec:       cxv1.FeedbackSourceSpec{Provider: p, SecretRef: cxv1.LocalObjectRef{Name: "nps-secret"}, Mapping: m, Generic: g},
		}
	}
	tests := []struct {
		name        string
		src         *cxv1.FeedbackSource
		found       bool
		data        map[string][]byte
		wantStatus  metav1.ConditionStatus
		wantReason  string
		wantMessage string
	}{
		{"ready", src(cxv1.ProviderTypeform, nil, nil), true, map[string][]byte{"secret": []byte("s")},
			metav1.ConditionTrue, cxv1.ReasonValid, "Typeform posts to /v1/namespaces/shop/sources/nps/webhook"},
		{"no Secret", src(cxv1.ProviderDelighted, nil, nil), false, nil,
			metav1.ConditionFalse, cxv1.ReasonSecretNotFound, "Secret nps-secret of spec.secretRef not found in namespace shop; create it with key(s) apiKey"},
		{"a key missing", src(cxv1.ProviderSurveyMonkey, nil, nil), true, map[string][]byte{"apiKey": []byte("k"), "apiSecret": []byte("s")},
			metav1.ConditionFalse, cxv1.ReasonSecretKeyMissing, "lacks key(s) accessToken that provider SurveyMonkey needs"},
		{"a mapping that does not compile", src(cxv1.ProviderGeneric, &cxv1.FeedbackMapping{Score: "body.score +"}, &cxv1.GenericWebhook{Auth: cxv1.GenericAuthToken}), true, map[string][]byte{"token": []byte("t")},
			metav1.ConditionFalse, cxv1.ReasonMappingInvalid, "spec.mapping.score does not compile"},
		{"a Generic token source needs the token key", src(cxv1.ProviderGeneric, nil, &cxv1.GenericWebhook{Auth: cxv1.GenericAuthToken}), true, map[string][]byte{"key": []byte("k")},
			metav1.ConditionFalse, cxv1.ReasonSecretKeyMissing, "lacks key(s) token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := feedbackSourceReady(tt.src, tt.found, tt.data)
			if c.Status != tt.wantStatus || c.Reason != tt.wantReason || !strings.Contains(c.Message, tt.wantMessage) || c.ObservedGeneration != 3 {
				t.Fatalf("condition = %+v, want %s %s %q", c, tt.wantStatus, tt.wantReason, tt.wantMessage)
			}
		})
	}
}
