package feedback

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // SurveyMonkey signs with HMAC-SHA1; not our choice
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"net/http"
	"strings"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// Secret data keys per provider.
const (
	KeyTypeformSecret        = "secret"
	KeySurveyMonkeyAPIKey    = "apiKey"
	KeySurveyMonkeyAPISecret = "apiSecret"
	KeySurveyMonkeyToken     = "accessToken"
	KeySurvicateSecret       = "signingSecret"
	KeyDelightedAPIKey       = "apiKey"
	KeyGenericToken          = "token"
	KeyGenericHMAC           = "key"
)

// Signature headers per provider.
const (
	HeaderTypeform     = "Typeform-Signature"
	HeaderSurveyMonkey = "Sm-Signature"
	HeaderSurvicate    = "Hmac"
	HeaderDelighted    = "X-Delighted-Webhook-Signature"
	// HeaderGenericHMAC is the default header of a Generic HMACSHA256 source.
	HeaderGenericHMAC = "X-Rapport-Signature"
	// HeaderGenericToken is the default header of a Generic Token source.
	HeaderGenericToken = "Authorization"
)

// RequiredKeys lists the Secret keys a source needs.
func RequiredKeys(provider cxv1.FeedbackProvider, generic *cxv1.GenericWebhook) []string {
	switch provider {
	case cxv1.ProviderTypeform:
		return []string{KeyTypeformSecret}
	case cxv1.ProviderSurveyMonkey:
		return []string{KeySurveyMonkeyAPIKey, KeySurveyMonkeyAPISecret, KeySurveyMonkeyToken}
	case cxv1.ProviderSurvicate:
		return []string{KeySurvicateSecret}
	case cxv1.ProviderDelighted:
		return []string{KeyDelightedAPIKey}
	case cxv1.ProviderGeneric:
		if generic != nil && generic.Auth == cxv1.GenericAuthToken {
			return []string{KeyGenericToken}
		}
		return []string{KeyGenericHMAC}
	}
	return nil
}

// secretValue returns a Secret key's value without surrounding whitespace
// (Secrets made from files often end in a newline).
func secretValue(data map[string][]byte, key string) []byte {
	return []byte(strings.TrimSpace(string(data[key])))
}

// MissingKeys returns the keys RequiredKeys lists that data lacks or holds empty.
func MissingKeys(provider cxv1.FeedbackProvider, generic *cxv1.GenericWebhook, data map[string][]byte) []string {
	var out []string
	for _, k := range RequiredKeys(provider, generic) {
		if len(secretValue(data, k)) == 0 {
			out = append(out, k)
		}
	}
	return out
}

// AuthError is an authentication failure: the collector answers 401 with
// Message and counts Reason (MissingSignature or InvalidSignature).
type AuthError struct {
	Reason  string
	Message string
}

func (e *AuthError) Error() string { return e.Message }

// Rejection reasons of Verify.
const (
	ReasonMissingSignature = "MissingSignature"
	ReasonInvalidSignature = "InvalidSignature"
)

func macOf(h func() hash.Hash, key, body []byte) []byte {
	m := hmac.New(h, key)
	m.Write(body)
	return m.Sum(nil)
}

// matchDigest reports whether the signature s, in hex or base64 (standard
// or URL, padded or not) after an optional "sha256=" style prefix, is want.
// Each decoding is compared in constant time; which decodings are tried
// depends only on s.
func matchDigest(s string, want []byte) bool {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '='); i > 0 && i < 10 {
		s = s[i+1:] // an algorithm prefix such as sha256=
	}
	ok := false
	if b, err := hex.DecodeString(s); err == nil && hmac.Equal(b, want) {
		ok = true
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && hmac.Equal(b, want) {
			ok = true
		}
	}
	return ok
}

// Verify checks that body was sent by the source's provider: its signature
// header against the HMAC of the raw body, or the shared token, compared in
// constant time. data is the Secret's data. The error is an *AuthError.
func Verify(provider cxv1.FeedbackProvider, generic *cxv1.GenericWebhook, data map[string][]byte, h http.Header, body []byte) error {
	var header, scheme string
	var want []byte
	switch provider {
	case cxv1.ProviderTypeform:
		header, scheme = HeaderTypeform, fmt.Sprintf("sha256=<base64 HMAC-SHA256 of the body keyed with the Secret's key %q>", KeyTypeformSecret)
		want = macOf(sha256.New, secretValue(data, KeyTypeformSecret), body)
	case cxv1.ProviderSurveyMonkey:
		header, scheme = HeaderSurveyMonkey, fmt.Sprintf("<base64 HMAC-SHA1 of the body keyed with the Secret's %q&%q>", KeySurveyMonkeyAPIKey, KeySurveyMonkeyAPISecret)
		key := append(append(secretValue(data, KeySurveyMonkeyAPIKey), '&'), secretValue(data, KeySurveyMonkeyAPISecret)...)
		want = macOf(sha1.New, key, body)
	case cxv1.ProviderSurvicate:
		header, scheme = HeaderSurvicate, fmt.Sprintf("<hex HMAC-SHA256 of the body keyed with the Secret's key %q>", KeySurvicateSecret)
		want = macOf(sha256.New, secretValue(data, KeySurvicateSecret), body)
	case cxv1.ProviderDelighted:
		header, scheme = HeaderDelighted, fmt.Sprintf("sha256=<hex HMAC-SHA256 of the body keyed with the Secret's key %q>", KeyDelightedAPIKey)
		want = macOf(sha256.New, secretValue(data, KeyDelightedAPIKey), body)
	case cxv1.ProviderGeneric:
		if generic == nil {
			return &AuthError{Reason: ReasonInvalidSignature, Message: "spec.generic is missing; set generic.auth to Token or HMACSHA256"}
		}
		if generic.Auth == cxv1.GenericAuthToken {
			return verifyToken(generic, data, h)
		}
		header = generic.Header
		if header == "" {
			header = HeaderGenericHMAC
		}
		scheme = fmt.Sprintf("<hex or base64 HMAC-SHA256 of the body keyed with the Secret's key %q>", KeyGenericHMAC)
		want = macOf(sha256.New, secretValue(data, KeyGenericHMAC), body)
	default:
		return &AuthError{Reason: ReasonInvalidSignature, Message: fmt.Sprintf("spec.provider %q is not supported", provider)}
	}
	got := h.Get(header)
	if got == "" {
		return &AuthError{Reason: ReasonMissingSignature, Message: fmt.Sprintf("the %s header is missing; the %s webhook must be signed: %s: %s", header, provider, header, scheme)}
	}
	if !matchDigest(got, want) {
		return &AuthError{Reason: ReasonInvalidSignature, Message: fmt.Sprintf("the %s header does not match the body; check that the secret configured in %s equals the FeedbackSource's Secret (%s: %s), and that nothing between them rewrites the body", header, provider, header, scheme)}
	}
	return nil
}

func verifyToken(generic *cxv1.GenericWebhook, data map[string][]byte, h http.Header) error {
	header := generic.Header
	if header == "" {
		header = HeaderGenericToken
	}
	got := strings.TrimSpace(h.Get(header))
	if f := strings.Fields(got); len(f) > 0 && strings.EqualFold(f[0], "Bearer") {
		got = strings.TrimSpace(strings.TrimPrefix(got, f[0]))
	}
	if got == "" {
		return &AuthError{Reason: ReasonMissingSignature, Message: fmt.Sprintf("the %s header is missing; send the Secret's key %q in it (\"Bearer <token>\" is accepted)", header, KeyGenericToken)}
	}
	// Compare digests, so the time taken says nothing about the token's length or prefix.
	a, b := sha256.Sum256([]byte(got)), sha256.Sum256(secretValue(data, KeyGenericToken))
	if subtle.ConstantTimeCompare(a[:], b[:]) != 1 {
		return &AuthError{Reason: ReasonInvalidSignature, Message: fmt.Sprintf("the token in the %s header is not the Secret's key %q", header, KeyGenericToken)}
	}
	return nil
}

// Sign returns the header a provider would send with body, as Verify
// expects it: for tests, the simulator and senders of Generic webhooks.
func Sign(provider cxv1.FeedbackProvider, generic *cxv1.GenericWebhook, data map[string][]byte, body []byte) (header, value string) {
	switch provider {
	case cxv1.ProviderTypeform:
		return HeaderTypeform, "sha256=" + base64.StdEncoding.EncodeToString(macOf(sha256.New, secretValue(data, KeyTypeformSecret), body))
	case cxv1.ProviderSurveyMonkey:
		key := append(append(secretValue(data, KeySurveyMonkeyAPIKey), '&'), secretValue(data, KeySurveyMonkeyAPISecret)...)
		return HeaderSurveyMonkey, base64.StdEncoding.EncodeToString(macOf(sha1.New, key, body))
	case cxv1.ProviderSurvicate:
		return HeaderSurvicate, hex.EncodeToString(macOf(sha256.New, secretValue(data, KeySurvicateSecret), body))
	case cxv1.ProviderDelighted:
		return HeaderDelighted, "sha256=" + hex.EncodeToString(macOf(sha256.New, secretValue(data, KeyDelightedAPIKey), body))
	case cxv1.ProviderGeneric:
		if generic != nil && generic.Auth == cxv1.GenericAuthToken {
			h := generic.Header
			if h == "" {
				h = HeaderGenericToken
			}
			return h, "Bearer " + string(secretValue(data, KeyGenericToken))
		}
		h := HeaderGenericHMAC
		if generic != nil && generic.Header != "" {
			h = generic.Header
		}
		return h, "sha256=" + hex.EncodeToString(macOf(sha256.New, secretValue(data, KeyGenericHMAC), body))
	}
	return "", ""
}
