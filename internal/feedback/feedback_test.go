package feedback

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // SurveyMonkey signs with HMAC-SHA1
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"hash"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

const testAssignment = "1~shop~checkout~1~enterprise~one-page~0~aXiJU0HF45TJQGFRsh5dmg"

// fixture reads testdata/name with the assignment filled in.
func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return []byte(strings.ReplaceAll(string(b), "{{ASSIGNMENT}}", testAssignment))
}

var secrets = map[string][]byte{
	KeyTypeformSecret: []byte("tf-secret\n"), KeySurveyMonkeyAPIKey: []byte("sm-key"), KeySurveyMonkeyAPISecret: []byte("sm-secret"),
	KeySurveyMonkeyToken: []byte("sm-token"), KeySurvicateSecret: []byte("sv-secret"), KeyGenericToken: []byte("g-token"), KeyGenericHMAC: []byte("g-key"),
}

func delightedSecrets() map[string][]byte {
	return map[string][]byte{KeyDelightedAPIKey: []byte("dl-key")}
}

func headersOf(h http.Header) map[string]string {
	out := map[string]string{}
	for k, v := range h {
		out[strings.ToLower(k)] = v[0]
	}
	return out
}

// TestProviderFixtures: each provider's fixture passes its signature check
// and its default mapping reads the response the fixture describes.
func TestProviderFixtures(t *testing.T) {
	details := fixture(t, "surveymonkey-response_details.json")
	tests := []struct {
		provider cxv1.FeedbackProvider
		generic  *cxv1.GenericWebhook
		mapping  *cxv1.FeedbackMapping
		file     string
		data     map[string][]byte
		response []byte
		accept   bool
		want     Event
	}{
		{provider: cxv1.ProviderTypeform, file: "typeform-form_response.json", data: secrets, accept: true,
			want: Event{EventID: "01JDRAPPORT0TYPEFORM00001", Assignment: testAssignment, Score: 4, Respondent: "c0ffee5e1f0e2d3b4a59687786950001", At: time.Date(2026, 11, 23, 10, 1, 12, 0, time.UTC)}},
		{provider: cxv1.ProviderTypeform, file: "typeform-form_response_partial.json", data: secrets},
		{provider: cxv1.ProviderSurveyMonkey, file: "surveymonkey-response_completed.json", data: secrets, response: details, accept: true,
			want: Event{EventID: "10190512345", Assignment: testAssignment, Score: 9, Respondent: "118855447700", At: time.Date(2026, 11, 23, 10, 2, 40, 0, time.UTC)}},
		{provider: cxv1.ProviderSurvicate, file: "survicate-question_answered.json", data: secrets, accept: true,
			want: Event{EventID: "9d3c0a11e2f04b6f8a7715c2d4e5f601", Assignment: testAssignment, Score: 8, Respondent: "6f1c2d3e-4a5b-4c6d-8e7f-90a1b2c3d4e5", At: time.Date(2026, 11, 23, 10, 3, 0, 0, time.UTC)}},
		{provider: cxv1.ProviderDelighted, file: "delighted-survey_response_created.json", data: delightedSecrets(), accept: true,
			want: Event{EventID: "7a1e3f9c0b2d4e6f8a0c1e3f5b7d9f1a3c5e7a9b1d3f5a7c9e1b3d5f7a9c1e3f", Assignment: testAssignment, Score: 10, Respondent: "5521", At: time.Unix(1795427100, 0).UTC()}},
		{provider: cxv1.ProviderDelighted, file: "delighted-survey_response_updated.json", data: delightedSecrets()},
		{provider: cxv1.ProviderGeneric, generic: &cxv1.GenericWebhook{Auth: cxv1.GenericAuthHMACSHA256}, file: "generic.json", data: secrets, accept: true,
			want: Event{EventID: "crm-export-000123", Assignment: testAssignment, Score: 3, Respondent: "cust-42", At: time.Date(2026, 11, 23, 10, 4, 0, 0, time.UTC)}},
		{provider: cxv1.ProviderGeneric, generic: &cxv1.GenericWebhook{Auth: cxv1.GenericAuthToken, Header: "X-Export-Token"}, file: "generic-export.json", data: secrets, accept: true,
			mapping: &cxv1.FeedbackMapping{EventID: "body.responseId", Assignment: "body.embeddedData.rapport", Score: "body.values.QID1 + 1", At: "body.recordedDate"},
			want:    Event{EventID: "R_2f9XkQmZ1", Assignment: testAssignment, Score: 3, At: time.Date(2026, 11, 23, 10, 6, 0, 0, time.UTC)}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			body := fixture(t, tt.file)
			name, value := Sign(tt.provider, tt.generic, tt.data, body)
			h := http.Header{}
			h.Set(name, value)
			if err := Verify(tt.provider, tt.generic, tt.data, h, body); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			m, err := Compile(tt.provider, tt.mapping)
			if err != nil {
				t.Fatal(err)
			}
			payload, err := m.Decode(body)
			if err != nil {
				t.Fatal(err)
			}
			in := Input{Payload: payload, Headers: headersOf(h)}
			if tt.response != nil {
				if in.Response, err = DecodeJSON(tt.response); err != nil {
					t.Fatal(err)
				}
			}
			accept, err := m.Accept(in)
			if err != nil {
				t.Fatal(err)
			}
			if accept != tt.accept {
				t.Fatalf("accept = %v, want %v", accept, tt.accept)
			}
			if !accept {
				return
			}
			got, err := m.Map(in)
			if err != nil {
				t.Fatal(err)
			}
			if !got.At.Equal(tt.want.At) {
				t.Errorf("at = %v, want %v", got.At, tt.want.At)
			}
			got.At, tt.want.At = time.Time{}, time.Time{}
			if got != tt.want {
				t.Errorf("event = %+v\nwant    %+v", got, tt.want)
			}
		})
	}
}

func TestVerifyRefuses(t *testing.T) {
	body := fixture(t, "typeform-form_response.json")
	_, good := Sign(cxv1.ProviderTypeform, nil, secrets, body)
	hmacSource := &cxv1.GenericWebhook{Auth: cxv1.GenericAuthHMACSHA256}
	_, goodGeneric := Sign(cxv1.ProviderGeneric, hmacSource, secrets, body)
	tests := []struct {
		name     string
		provider cxv1.FeedbackProvider
		generic  *cxv1.GenericWebhook
		header   string
		value    string
		body     []byte
		want     string
	}{
		{"no signature", cxv1.ProviderTypeform, nil, "", "", body, ReasonMissingSignature},
		{"a signature of another body", cxv1.ProviderTypeform, nil, HeaderTypeform, good, append([]byte(" "), body...), ReasonInvalidSignature},
		{"a signature with another key", cxv1.ProviderTypeform, nil, HeaderTypeform, func() string {
			_, v := Sign(cxv1.ProviderTypeform, nil, map[string][]byte{KeyTypeformSecret: []byte("other")}, body)
			return v
		}(), body, ReasonInvalidSignature},
		{"garbage", cxv1.ProviderTypeform, nil, HeaderTypeform, "sha256=!!!", body, ReasonInvalidSignature},
		{"the Typeform signature in the wrong header", cxv1.ProviderSurvicate, nil, HeaderTypeform, good, body, ReasonMissingSignature},
		{"a signature too long to be a digest", cxv1.ProviderGeneric, hmacSource, HeaderGenericHMAC, goodGeneric + strings.Repeat("0", maxSignature), body, ReasonInvalidSignature},
		{"a truncated signature", cxv1.ProviderGeneric, hmacSource, HeaderGenericHMAC, goodGeneric[:len(goodGeneric)-2], body, ReasonInvalidSignature},
		{"a wrong token", cxv1.ProviderGeneric, &cxv1.GenericWebhook{Auth: cxv1.GenericAuthToken}, "Authorization", "Bearer g-token2", body, ReasonInvalidSignature},
		{"a token prefix", cxv1.ProviderGeneric, &cxv1.GenericWebhook{Auth: cxv1.GenericAuthToken}, "Authorization", "g-tok", body, ReasonInvalidSignature},
		{"no token", cxv1.ProviderGeneric, &cxv1.GenericWebhook{Auth: cxv1.GenericAuthToken}, "Authorization", "Bearer ", body, ReasonMissingSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.header != "" {
				h.Set(tt.header, tt.value)
			}
			err := Verify(tt.provider, tt.generic, secrets, h, tt.body)
			var ae *AuthError
			if !errors.As(err, &ae) || ae.Reason != tt.want {
				t.Fatalf("Verify = %v, want an AuthError %s", err, tt.want)
			}
		})
	}
	// A token is accepted with and without "Bearer ", and with the Secret's trailing newline.
	for _, v := range []string{"g-token", "Bearer g-token", "bearer  g-token "} {
		h := http.Header{"Authorization": {v}}
		if err := Verify(cxv1.ProviderGeneric, &cxv1.GenericWebhook{Auth: cxv1.GenericAuthToken}, map[string][]byte{KeyGenericToken: []byte("g-token\n")}, h, body); err != nil {
			t.Errorf("token %q: %v", v, err)
		}
	}
	// Signatures in hex and base64 both verify for Generic HMAC.
	for _, v := range []string{goodGeneric, strings.TrimPrefix(goodGeneric, "sha256=")} {
		if err := Verify(cxv1.ProviderGeneric, hmacSource, secrets, http.Header{HeaderGenericHMAC: {v}}, body); err != nil {
			t.Errorf("signature %q: %v", v, err)
		}
	}
}

func TestCompileErrorsNameTheField(t *testing.T) {
	tests := []struct {
		name    string
		mapping cxv1.FeedbackMapping
		want    string
	}{
		{"syntax", cxv1.FeedbackMapping{Score: "body.score +"}, "spec.mapping.score does not compile"},
		{"wrong static type", cxv1.FeedbackMapping{Accept: "'yes'"}, "spec.mapping.accept must give a bool, but gives string"},
		{"unknown variable", cxv1.FeedbackMapping{EventID: "payload.id"}, "spec.mapping.eventID does not compile"},
		{"score as a list", cxv1.FeedbackMapping{Score: "[1]"}, "spec.mapping.score must give an int"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile(cxv1.ProviderTypeform, &tt.mapping)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Compile = %v, want %q", err, tt.want)
			}
		})
	}
	if _, err := Compile("Qualtrics", nil); err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Fatalf("Compile(unknown provider) = %v", err)
	}
	for p := range Defaults {
		if _, err := Compile(p, nil); err != nil {
			t.Errorf("the default mapping of %s does not compile: %v", p, err)
		}
	}
}

func TestMapErrorsNameTheField(t *testing.T) {
	m, err := Compile(cxv1.ProviderTypeform, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, body, field, want string
	}{
		{"no scale answer", `{"event_id":"e","event_type":"form_response","form_response":{"token":"t","answers":[{"type":"text","text":"hi","field":{"type":"long_text"}}]}}`, FieldScore, "the Typeform default of spec.mapping.score"},
		{"a fractional score", `{"event_id":"e","event_type":"form_response","form_response":{"token":"t","answers":[{"type":"number","number":4.5,"field":{"type":"rating"}}]}}`, FieldScore, "not a whole number"},
		{"no event id", `{"event_type":"form_response","form_response":{"token":"t","answers":[]}}`, FieldEventID, "spec.mapping.eventID"},
		{"an empty event id", `{"event_id":"","event_type":"form_response","form_response":{"token":"t","answers":[]}}`, FieldEventID, "empty event id"},
		{"a bad time", `{"event_id":"e","event_type":"form_response","form_response":{"token":"t","submitted_at":"yesterday","answers":[{"type":"number","number":4,"field":{"type":"rating"}}]}}`, FieldAt, "not a timestamp"},
		{"an object as respondent", `{"event_id":"e","event_type":"form_response","form_response":{"token":{"a":1},"answers":[{"type":"number","number":4,"field":{"type":"rating"}}]}}`, FieldRespondent, "not a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, err := m.Decode([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			_, err = m.Map(Input{Payload: body})
			var me *MappingError
			if !errors.As(err, &me) || me.Field != tt.field || !strings.Contains(me.Message, tt.want) {
				t.Fatalf("Map = %v, want a MappingError on %s containing %q", err, tt.field, tt.want)
			}
		})
	}
}

// TestSlowMappingsAreStopped runs expressions of spec.mapping written to
// be slow on a payload: one whose cost stays far under CEL's cost limit
// while its time grows with the square of a list (CEL's cost tracker is
// what is slow), and one whose cost passes the limit. Both are stopped,
// with the field named; on a short list both give a score.
func TestSlowMappingsAreStopped(t *testing.T) {
	for _, tt := range []struct {
		score string
		items int
	}{
		{`body.items.all(a, true) ? 1 : 2`, 40000},
		{`body.items.map(a, body.items.filter(b, b == a).size()).size() > 0 ? 1 : 2`, 2000},
	} {
		m, err := Compile(cxv1.ProviderGeneric, &cxv1.FeedbackMapping{Score: tt.score})
		if err != nil {
			t.Fatal(err)
		}
		items := make([]any, tt.items)
		for i := range items {
			items[i] = int64(i)
		}
		_, err = m.Map(Input{Payload: payloadOf(t, map[string]any{"id": "e", "items": items})})
		var me *MappingError
		if !errors.As(err, &me) || me.Field != FieldScore ||
			!strings.Contains(me.Message, "took longer than 250ms") && !strings.Contains(me.Message, "cost limit") {
			t.Fatalf("%s over %d items: Map = %v, want a MappingError on score saying it was stopped", tt.score, tt.items, err)
		}
		if ev, err := m.Map(Input{Payload: payloadOf(t, map[string]any{"id": "e", "items": items[:10]})}); err != nil || ev.Score != 1 {
			t.Fatalf("%s over 10 items: Map = %+v, %v; want score 1", tt.score, ev, err)
		}
	}
}

// TestDefaultMappingsOnTheLargestPayload maps a Typeform payload of the
// collector's largest body (1 MiB), nearly all of it answers before the
// score: the worst case of a default, which runs without CEL's cost limit.
// (It takes about 30 ms here; with the cost tracker on, 0.55 s.)
func TestDefaultMappingsOnTheLargestPayload(t *testing.T) {
	m, err := Compile(cxv1.ProviderTypeform, nil)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString(`{"event_id":"e","event_type":"form_response","form_response":{"token":"t","submitted_at":"2026-12-01T04:00:00Z","answers":[`)
	const text = `{"type":"text","text":"x","field":{"type":"long_text"}},`
	for b.Len() < 1<<20-200 {
		b.WriteString(text)
	}
	b.WriteString(`{"type":"number","number":4,"field":{"type":"rating"}}]}}`)
	body, err := m.Decode([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	n := len(body.Value().(map[string]any)["form_response"].(map[string]any)["answers"].([]any))
	ev, err := m.Map(Input{Payload: body})
	if err != nil || ev.Score != 4 {
		t.Fatalf("Map of %d answers (%d bytes) = %+v, %v; want score 4", n, b.Len(), ev, err)
	}
	t.Logf("%d answers in %d bytes mapped", n, b.Len())
}

func TestDecodeJSON(t *testing.T) {
	v, err := DecodeJSON([]byte(`{"a": 4, "b": 4.5, "c": [1, 9007199254740993], "d": 1e400}`))
	if err == nil {
		t.Fatalf("a number out of range decoded: %v", v)
	}
	v, err = DecodeJSON([]byte(`{"a": 4, "b": 4.5, "c": [1, 9007199254740993]}`))
	if err != nil {
		t.Fatal(err)
	}
	m := v.(map[string]any)
	if m["a"] != int64(4) || m["b"] != 4.5 || m["c"].([]any)[1] != int64(9007199254740993) {
		t.Fatalf("decoded %#v", m)
	}
	for _, bad := range []string{``, `{"a":1} {"b":2}`, `{"a":`, strings.Repeat("[", 100) + strings.Repeat("]", 100)} {
		if _, err := DecodeJSON([]byte(bad)); err == nil {
			t.Errorf("DecodeJSON(%.20q) succeeded", bad)
		}
	}
}

func TestRequiredKeys(t *testing.T) {
	if got := MissingKeys(cxv1.ProviderSurveyMonkey, nil, map[string][]byte{KeySurveyMonkeyAPIKey: []byte("k"), KeySurveyMonkeyToken: []byte(" \n")}); strings.Join(got, ",") != "apiSecret,accessToken" {
		t.Fatalf("MissingKeys = %v", got)
	}
	if got := RequiredKeys(cxv1.ProviderGeneric, &cxv1.GenericWebhook{Auth: cxv1.GenericAuthToken}); strings.Join(got, ",") != "token" {
		t.Fatalf("RequiredKeys(Generic Token) = %v", got)
	}
}

// TestMACs: the reused HMACs give crypto/hmac's sums for each hash, and
// never write to the Secret's bytes.
func TestMACs(t *testing.T) {
	body := fixture(t, "typeform-form_response.json")
	for range 2 { // the second time from the pool
		for _, k := range []struct {
			kind hashKind
			new  func() hash.Hash
		}{{hashSHA256, sha256.New}, {hashSHA1, sha1.New}} {
			want := hmac.New(k.new, []byte("a key"))
			want.Write(body)
			if got := k.kind.mac([]byte("a key"), body); !bytes.Equal(got, want.Sum(nil)) {
				t.Errorf("hash %d: mac %x, want %x", k.kind, got, want.Sum(nil))
			}
		}
	}

	// SurveyMonkey's key is the API key, '&' and the secret: made in its
	// own buffer, not in the spare room of the Secret's value.
	apiKey := make([]byte, 0, 64)
	apiKey = append(apiKey, "sm-key\n"...)
	data := map[string][]byte{KeySurveyMonkeyAPIKey: apiKey, KeySurveyMonkeyAPISecret: []byte("sm-secret")}
	name, value := Sign(cxv1.ProviderSurveyMonkey, nil, data, body)
	if err := Verify(cxv1.ProviderSurveyMonkey, nil, data, http.Header{name: {value}}, body); err != nil {
		t.Fatal(err)
	}
	if got := string(apiKey[:cap(apiKey)][:len("sm-key\n")+1]); got != "sm-key\n\x00" {
		t.Fatalf("the Secret's bytes were written to: %q", got)
	}
	want := hmac.New(sha1.New, []byte("sm-key&sm-secret"))
	want.Write(body)
	if value != base64.StdEncoding.EncodeToString(want.Sum(nil)) {
		t.Fatalf("SurveyMonkey's signature %s is not keyed with apiKey&apiSecret", value)
	}
}

// payloadOf is v encoded as JSON, read whole.
func payloadOf(t testing.TB, v any) *Payload {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	p, err := newPayload(b, everything)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
