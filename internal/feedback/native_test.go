package feedback

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

var providers = []cxv1.FeedbackProvider{cxv1.ProviderTypeform, cxv1.ProviderSurveyMonkey, cxv1.ProviderSurvicate, cxv1.ProviderDelighted, cxv1.ProviderGeneric}

// TestNativesAreDefaults: a native answers only for the expression it was
// written for, keyed by its text; a key that is no longer any provider's
// default (the default was edited) is a native that never runs.
func TestNativesAreDefaults(t *testing.T) {
	defaults := map[string]bool{}
	for _, p := range providers {
		for _, f := range fieldsOf(Defaults[p]) {
			if f[1] == "" {
				continue
			}
			defaults[f[1]] = true
			if natives[f[1]] == nil {
				t.Logf("%s's default of %s is evaluated by CEL alone: %s", p, f[0], f[1])
			}
		}
	}
	for src := range natives {
		if !defaults[src] {
			t.Errorf("native for %q: no provider's default is this expression; fix the key or remove the native", src)
		}
	}
}

// nativePair is a provider's default mapping compiled with and without the
// natives.
type nativePair struct {
	provider cxv1.FeedbackProvider
	native   *Mapping
	cel      *Mapping
	response any // SurveyMonkey's fetched response
}

func nativePairs(t testing.TB) []nativePair {
	var out []nativePair
	details, err := os.ReadFile(filepath.Join("testdata", "surveymonkey-response_details.json"))
	if err != nil {
		t.Fatal(err)
	}
	response, err := DecodeJSON(details)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range providers {
		n, err := compile(p, nil, true)
		if err != nil {
			t.Fatal(err)
		}
		c, err := compile(p, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		pair := nativePair{provider: p, native: n, cel: c}
		if p == cxv1.ProviderSurveyMonkey {
			pair.response = response
		}
		out = append(out, pair)
	}
	return out
}

// sameAsCEL checks that the natives change nothing on body: the same
// Accept and Map results, the same errors, word for word. It returns how
// many of the mapping's natives answered (rather than declined).
func sameAsCEL(t *testing.T, p nativePair, body []byte) int {
	t.Helper()
	payload, err := p.native.Decode(body)
	if err != nil {
		return 0
	}
	in := Input{Payload: payload, Response: p.response}
	na, naErr := p.native.Accept(in)
	ca, caErr := p.cel.Accept(in)
	ne, neErr := p.native.Map(in)
	ce, ceErr := p.cel.Map(in)
	if na != ca || fmt.Sprint(naErr) != fmt.Sprint(caErr) || !reflect.DeepEqual(ne, ce) || fmt.Sprint(neErr) != fmt.Sprint(ceErr) {
		t.Fatalf("%s on %s:\n natives: accept %v (%v), %+v (%v)\n CEL:     accept %v (%v), %+v (%v)",
			p.provider, body, na, naErr, ne, neErr, ca, caErr, ce, ceErr)
	}
	answered := 0
	for _, x := range p.native.fields {
		if x.native == nil {
			continue
		}
		if _, ok := x.native(&payload.doc); ok {
			answered++
		}
	}
	return answered
}

// TestNativesMatchCEL holds the natives to CEL on each provider's fixture
// (where every native must answer, or it saves nothing) and on payloads
// written to take each native's every turn: members missing, null, of
// another type; optional members absent; a Typeform answer without a
// field type after the scored one; no scored answer.
func TestNativesMatchCEL(t *testing.T) {
	pairs := nativePairs(t)
	fixtures := map[cxv1.FeedbackProvider]string{
		cxv1.ProviderTypeform:     "typeform-form_response.json",
		cxv1.ProviderSurveyMonkey: "surveymonkey-response_completed.json",
		cxv1.ProviderSurvicate:    "survicate-question_answered.json",
		cxv1.ProviderDelighted:    "delighted-survey_response_created.json",
		cxv1.ProviderGeneric:      "generic.json",
	}
	for _, p := range pairs {
		t.Run("fixture/"+string(p.provider), func(t *testing.T) {
			natived := 0
			for _, x := range p.native.fields {
				if x.native != nil {
					natived++
				}
			}
			if got := sameAsCEL(t, p, fixture(t, fixtures[p.provider])); got != natived || got == 0 {
				t.Fatalf("%d of the mapping's %d natives answered on the fixture; want all (and at least one)", got, natived)
			}
		})
	}
	bodies := []string{
		`{}`, `[]`, `"x"`, `1`, `null`,
		// Typeform
		`{"event_id":"e","event_type":"form_response","form_response":{"token":"t","submitted_at":"2026-11-23T10:01:12Z","answers":[{"number":4,"field":{"type":"rating"}}]}}`,
		`{"event_id":"e","event_type":"form_response","form_response":{"hidden":{},"token":"t","answers":[{"number":4.0,"field":{"type":"nps"}},{"field":{"type":"long_text"}}]}}`,
		`{"event_id":"e","event_type":"form_response","form_response":{"hidden":{"rapport":7},"token":"t","answers":[{"number":4.5,"field":{"type":"nps"}}]}}`,
		`{"event_id":"e","event_type":"form_response","form_response":{"hidden":null,"token":"t","answers":[{"number":4,"field":{"type":"nps"}}]}}`,
		`{"event_id":"e","event_type":"form_response","form_response":{"hidden":{"rapport":null},"token":"t","answers":[{"number":4,"field":{"type":"nps"}}]}}`,
		`{"event_id":"e","event_type":"form_response","form_response":{"hidden":"x","token":"t","answers":[{"number":4,"field":{"type":"nps"}}]}}`,
		`{"event_id":"e","event_type":"form_response","form_response":{"token":"t","answers":[{"number":4,"field":{"type":"nps"}},{"field":{}}]}}`,
		`{"event_id":"e","event_type":"form_response","form_response":{"token":"t","answers":[{"number":4,"field":{"type":"nps"}},{"field":{"type":3}}]}}`,
		`{"event_id":"e","event_type":"form_response","form_response":{"token":"t","answers":[{"field":{"type":"long_text"}}]}}`,
		`{"event_id":"e","event_type":"form_response","form_response":{"token":"t","answers":[{"field":{"type":"long_text"}},{"number":4,"field":{"type":"nps"}},{"number":2,"field":{"type":"rating"}}]}}`,
		`{"event_id":"e","event_type":"form_response","form_response":{"token":"t","answers":[{"field":{"type":"nps"}}]}}`,
		`{"event_id":"e","event_type":"form_response","form_response":{"token":"t","answers":[{"number":"4","field":{"type":"nps"}}]}}`,
		`{"event_id":"e","event_type":"form_response","form_response":{"token":"t","answers":[{"number":null,"field":{"type":"nps"}}]}}`,
		`{"event_id":"e","event_type":"form_response","form_response":{"token":"t","answers":[]}}`,
		`{"event_id":"e","event_type":"form_response","form_response":{"token":"t","answers":{}}}`,
		`{"event_id":"e","event_type":"form_response","form_response":{"token":5,"answers":[{"number":4,"field":{"type":"opinion_scale"}}]}}`,
		`{"event_id":7,"event_type":"form_response","form_response":[]}`,
		`{"event_id":"","event_type":"form_response"}`,
		`{"event_id":"e","event_type":7}`,
		`{"event_id":"e","event_type":"form_response_partial"}`,
		`{"event_id":"e","event_type":null}`,
		// SurveyMonkey
		`{"event_id":"e","event_type":"response_completed","resources":{"respondent_id":"r"},"event_datetime":"2026-11-23T10:02:40Z"}`,
		`{"event_id":"e","event_type":"response_completed","resources":{"respondent_id":42},"event_datetime":1795427100}`,
		`{"event_id":"e","event_type":"response_completed","resources":[],"event_datetime":"x"}`,
		// Survicate
		`{"messageId":"m","event":{"questionAnswered":{"responseUuid":"u","timestamp":"2026-11-23T10:03:00+00:00","respondent":{"id":"r","attributes":{"rapport":"a"}},"choice":{"id":8}}}}`,
		`{"messageId":"m","event":{"questionAnswered":{"timestamp":"2026-11-23T10:03:00+00:00","respondent":{"id":9,"attributes":[]},"choice":{"id":8.0}}}}`,
		`{"messageId":"m","event":{"questionAnswered":{"responseUuid":"u","respondent":{"attributes":{}},"choice":{"id":8}}}}`,
		`{"messageId":"m","event":{"questionAnswered":{"responseUuid":null,"respondent":{"id":"r","attributes":null},"choice":{"id":"8"}}}}`,
		`{"messageId":"m","event":{"questionAnswered":{"respondent":{"id":"r"},"choice":{"id":8}}}}`,
		`{"messageId":"m","event":{"questionAnswered":null}}`,
		`{"messageId":"m","event":{}}`,
		`{"messageId":"m","event":null}`,
		`{"messageId":"m","event":"x"}`,
		// Delighted
		`{"event_id":"e","event_type":"survey_response.created","event_data":{"score":9,"person":{"id":"p"},"created_at":1795427100,"person_properties":{"rapport":"a"}}}`,
		`{"event_id":"e","event_type":"survey_response.created","event_data":{"score":9,"person":{"id":5521},"created_at":1795427100.5,"person_properties":"x"}}`,
		`{"event_id":"e","event_type":"survey_response.created","event_data":{"score":9,"person":{"id":"p"},"created_at":"2026-11-23T10:01:12Z"}}`,
		`{"event_id":"e","event_type":"survey_response.created","event_data":{"score":true,"person":{},"person_properties":{}}}`,
		`{"event_id":"e","event_type":"survey_response.updated","event_data":{"score":9}}`,
		// Generic
		`{"id":"e","score":3}`,
		`{"id":"e","score":3,"experiment":"x","variant":"v","segment":"s","respondent":"r","at":"2026-11-23T10:04:00Z"}`,
		`{"id":"e","score":3,"assignment":"","experiment":1,"variant":null,"segment":{},"respondent":[],"at":1795427100}`,
		`{"id":"e","score":3.25,"assignment":true}`,
		`{"id":null,"score":3}`,
		`{"score":3}`,
		// Names twice (the last wins) and escaped
		`{"id":"a","score":3,"\u0069d":"b","score":"4","score":5}`,
		`{"event_id":"e","event_type":"form_response","form_response":{"token":"t","answers":[{"number":4,"field":{"type":"nps"}}]},"form_response":{"tok\u0065n":"u","answers":[{"number":2,"n\u0075mber":3,"field":{"type":"r\u0061ting"}}]}}`,
	}
	for _, b := range bodies {
		for _, p := range pairs {
			t.Run(string(p.provider), func(t *testing.T) {
				sameAsCEL(t, p, []byte(strings.ReplaceAll(b, "{{ASSIGNMENT}}", testAssignment)))
			})
		}
	}
}

// FuzzNativesMatchCEL holds the natives to CEL on any input.
//
//	go test ./internal/feedback/ -run '^$' -fuzz FuzzNativesMatchCEL -fuzztime 60s
func FuzzNativesMatchCEL(f *testing.F) {
	addFixtures(f)
	f.Add([]byte(`{"event_id":"e","event_type":"form_response","form_response":{"hidden":{"rapport":"a"},"token":"t","answers":[{"number":4,"field":{"type":"nps"}},{"field":{"type":"x"}}]}}`))
	f.Add([]byte(`{"messageId":"m","event":{"questionAnswered":{"responseUuid":"u","respondent":{"id":"r","attributes":{"rapport":"a"}},"choice":{"id":8}}}}`))
	f.Add([]byte(`{"id":"e","score":3,"assignment":"a","experiment":"x","variant":"v","segment":"s","respondent":"r","at":1}`))
	pairs := nativePairs(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, p := range pairs {
			sameAsCEL(t, p, body)
		}
	})
}
