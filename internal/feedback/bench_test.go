package feedback

import (
	"net/http"
	"testing"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// benchCase is a provider's fixture and Secret.
type benchCase struct {
	provider cxv1.FeedbackProvider
	file     string
	data     map[string][]byte
}

// signed is the fixture's body and the headers the provider signs it with.
func (c benchCase) signed() ([]byte, http.Header) {
	body := fixture(&testing.T{}, c.file)
	name, value := Sign(c.provider, nil, c.data, body)
	return body, http.Header{name: {value}}
}

// BenchmarkWebhook measures the per-request work of a webhook before the
// commit: signature check, JSON decoding and the default mapping, on each
// provider's fixture, as the collector does it.
//
//	go test ./internal/feedback/ -run '^$' -bench Webhook -benchmem
func BenchmarkWebhook(b *testing.B) {
	for _, tt := range []benchCase{
		{cxv1.ProviderTypeform, "typeform-form_response.json", secrets},
		{cxv1.ProviderDelighted, "delighted-survey_response_created.json", delightedSecrets()},
		{cxv1.ProviderSurvicate, "survicate-question_answered.json", secrets},
	} {
		b.Run(string(tt.provider), func(b *testing.B) {
			body, h := tt.signed()
			m, err := Compile(tt.provider, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if err := Verify(tt.provider, nil, tt.data, h, body); err != nil {
					b.Fatal(err)
				}
				payload, err := m.Decode(body)
				if err != nil {
					b.Fatal(err)
				}
				in := Input{Payload: payload}
				if ok, err := m.Accept(in); !ok || err != nil {
					b.Fatal(ok, err)
				}
				if _, err := m.Map(in); err != nil {
					b.Fatal(err)
				}
				payload.Release()
			}
		})
	}
}

// BenchmarkVerify measures the signature check alone, per provider.
//
//	go test ./internal/feedback/ -run '^$' -bench Verify -benchmem
func BenchmarkVerify(b *testing.B) {
	for _, tt := range []benchCase{
		{cxv1.ProviderTypeform, "typeform-form_response.json", secrets},
		{cxv1.ProviderSurveyMonkey, "surveymonkey-response_completed.json", secrets},
		{cxv1.ProviderSurvicate, "survicate-question_answered.json", secrets},
	} {
		b.Run(string(tt.provider), func(b *testing.B) {
			body, h := tt.signed()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if err := Verify(tt.provider, nil, tt.data, h, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
