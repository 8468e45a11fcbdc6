package feedback

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // SurveyMonkey signs with HMAC-SHA1; not our choice
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/hmacpool"
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
// The value is the Secret's own bytes: never append to it.
func secretValue(data map[string][]byte, key string) []byte {
	return bytes.TrimSpace(data[key])
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

// hashKind is the hash of a provider's HMAC.
type hashKind int

const (
	hashSHA256 hashKind = iota
	hashSHA1
)

// macs keeps keyed HMACs per hash for reuse, for at most 256 keys each.
var macs = [...]*hmacpool.Pools{hashSHA256: hmacpool.New(sha256.New, 256), hashSHA1: hmacpool.New(sha1.New, 256)}

// with runs f with the HMAC of body keyed with key (valid only during f).
func (k hashKind) with(key, body []byte, f func(sum []byte) bool) bool {
	m := macs[k].Get(key)
	defer m.Put()
	m.Write(body)
	return f(m.Digest())
}

// mac is the HMAC of body keyed with key.
func (k hashKind) mac(key, body []byte) []byte {
	var out []byte
	k.with(key, body, func(sum []byte) bool { out = bytes.Clone(sum); return true })
	return out
}

// maxSignature bounds the signatures matchDigest decodes: a 32-byte digest
// in hex is 64 characters.
const maxSignature = 128

// matchDigest reports whether the signature s, in hex or base64 (standard
// or URL, padded or not) after an optional "sha256=" style prefix, is want.
// Each decoding is compared in constant time; which decodings are tried
// depends only on s. It decodes on the stack.
func matchDigest(s string, want []byte) bool {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '='); i > 0 && i < 10 {
		s = s[i+1:] // an algorithm prefix such as sha256=
	}
	if len(s) > maxSignature {
		return false
	}
	var in [maxSignature]byte
	src := in[:copy(in[:], s)]
	var out [maxSignature]byte
	ok := false
	if n, err := hex.Decode(out[:], src); err == nil && hmac.Equal(out[:n], want) {
		ok = true
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if n, err := enc.Decode(out[:], src); err == nil && hmac.Equal(out[:n], want) {
			ok = true
		}
	}
	return ok
}

// signing is how a provider signs its webhooks: the header, the hash and
// the key (for a Generic source with a token, Verify checks the token).
func signing(provider cxv1.FeedbackProvider, generic *cxv1.GenericWebhook, data map[string][]byte) (string, hashKind, []byte, error) {
	switch provider {
	case cxv1.ProviderTypeform:
		return HeaderTypeform, hashSHA256, secretValue(data, KeyTypeformSecret), nil
	case cxv1.ProviderSurveyMonkey:
		key := append(append([]byte{}, secretValue(data, KeySurveyMonkeyAPIKey)...), '&')
		return HeaderSurveyMonkey, hashSHA1, append(key, secretValue(data, KeySurveyMonkeyAPISecret)...), nil
	case cxv1.ProviderSurvicate:
		return HeaderSurvicate, hashSHA256, secretValue(data, KeySurvicateSecret), nil
	case cxv1.ProviderDelighted:
		return HeaderDelighted, hashSHA256, secretValue(data, KeyDelightedAPIKey), nil
	case cxv1.ProviderGeneric:
		if generic == nil {
			return "", 0, nil, &AuthError{Reason: ReasonInvalidSignature, Message: "spec.generic is missing; set generic.auth to Token or HMACSHA256"}
		}
		header := generic.Header
		if header == "" {
			header = HeaderGenericHMAC
		}
		return header, hashSHA256, secretValue(data, KeyGenericHMAC), nil
	}
	return "", 0, nil, &AuthError{Reason: ReasonInvalidSignature, Message: fmt.Sprintf("spec.provider %q is not supported", provider)}
}

// scheme tells how a provider's signature is written, for error messages.
func scheme(provider cxv1.FeedbackProvider) string {
	switch provider {
	case cxv1.ProviderTypeform:
		return fmt.Sprintf("sha256=<base64 HMAC-SHA256 of the body keyed with the Secret's key %q>", KeyTypeformSecret)
	case cxv1.ProviderSurveyMonkey:
		return fmt.Sprintf("<base64 HMAC-SHA1 of the body keyed with the Secret's %q&%q>", KeySurveyMonkeyAPIKey, KeySurveyMonkeyAPISecret)
	case cxv1.ProviderSurvicate:
		return fmt.Sprintf("<hex HMAC-SHA256 of the body keyed with the Secret's key %q>", KeySurvicateSecret)
	case cxv1.ProviderDelighted:
		return fmt.Sprintf("sha256=<hex HMAC-SHA256 of the body keyed with the Secret's key %q>", KeyDelightedAPIKey)
	}
	return fmt.Sprintf("<hex or base64 HMAC-SHA256 of the body keyed with the Secret's key %q>", KeyGenericHMAC)
}

// Header is a request's header as Verify reads it: http.Header, or a
// server's own type (Get: the first value of a name, in any case).
type Header interface{ Get(name string) string }

// Verify checks that body was sent by the source's provider: its signature
// header against the HMAC of the raw body, or the shared token, compared in
// constant time. data is the Secret's data. The error is an *AuthError.
func Verify(provider cxv1.FeedbackProvider, generic *cxv1.GenericWebhook, data map[string][]byte, h Header, body []byte) error {
	if provider == cxv1.ProviderGeneric && generic != nil && generic.Auth == cxv1.GenericAuthToken {
		return verifyToken(generic, data, h)
	}
	header, kind, key, err := signing(provider, generic, data)
	if err != nil {
		return err
	}
	got := h.Get(header)
	if got == "" {
		return &AuthError{Reason: ReasonMissingSignature, Message: fmt.Sprintf("the %s header is missing; the %s webhook must be signed: %s: %s", header, provider, header, scheme(provider))}
	}
	if !kind.with(key, body, func(want []byte) bool { return matchDigest(got, want) }) {
		return &AuthError{Reason: ReasonInvalidSignature, Message: fmt.Sprintf("the %s header does not match the body; check that the secret configured in %s equals the FeedbackSource's Secret (%s: %s), and that nothing between them rewrites the body", header, provider, header, scheme(provider))}
	}
	return nil
}

func verifyToken(generic *cxv1.GenericWebhook, data map[string][]byte, h Header) error {
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
	if provider == cxv1.ProviderGeneric && generic != nil && generic.Auth == cxv1.GenericAuthToken {
		h := generic.Header
		if h == "" {
			h = HeaderGenericToken
		}
		return h, "Bearer " + string(secretValue(data, KeyGenericToken))
	}
	if provider == cxv1.ProviderGeneric && generic == nil {
		generic = &cxv1.GenericWebhook{}
	}
	header, kind, key, err := signing(provider, generic, data)
	if err != nil {
		return "", ""
	}
	mac := kind.mac(key, body)
	switch provider {
	case cxv1.ProviderTypeform:
		return header, "sha256=" + base64.StdEncoding.EncodeToString(mac)
	case cxv1.ProviderSurveyMonkey:
		return header, base64.StdEncoding.EncodeToString(mac)
	case cxv1.ProviderSurvicate:
		return header, hex.EncodeToString(mac)
	}
	return header, "sha256=" + hex.EncodeToString(mac)
}
