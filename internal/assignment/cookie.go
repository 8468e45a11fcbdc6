package assignment

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/rapport-dev/rapport/internal/hmacpool"
)

// Version is the format version, the value's first field.
const Version = "1"

// tagBytes is the length of the truncated HMAC (128 bits).
const tagBytes = 16

// KeyBytes is the length of a signing key.
const KeyBytes = 32

// MaxValueLen bounds a value a client may send (names are at most 253
// characters each).
const MaxValueLen = 1024

// sep separates the fields.
const sep = "~"

// domain separates this MAC from any other use of the key.
const domain = "rapport-assignment\x00"

// Assignment is what a signed value says about a customer.
type Assignment struct {
	Namespace  string
	Experiment string
	// Run is the experiment's status.run when the customer was served.
	Run     int32
	Segment string
	Variant string
	// Epoch is the segment's allocation epoch (status.segments[].epoch),
	// 0 when unknown.
	Epoch int32
}

// Errors of Parse and Verify. A value that is not ours is ErrMalformed; one
// whose tag does not match is ErrForged.
var (
	ErrMalformed = errors.New("the assignment is not a Rapport assignment value")
	ErrForged    = errors.New("the assignment's signature does not match: it was altered, or signed with another key")
)

func (a Assignment) payload() string {
	return strings.Join([]string{Version, a.Namespace, a.Experiment, strconv.Itoa(int(a.Run)),
		a.Segment, a.Variant, strconv.Itoa(int(a.Epoch))}, sep)
}

// macs keeps HMACs keyed with experiments' keys for reuse (see hmacpool),
// for at most 4,096 experiments at a time.
var macs = hmacpool.New(sha256.New, 4096)

// tag appends payload's tag under key to dst.
func tag(dst, key []byte, payload string) []byte {
	m := macs.Get(key)
	defer m.Put()
	m.Write([]byte(domain))
	m.Write([]byte(payload))
	return append(dst, m.Digest()[:tagBytes]...)
}

// Sign returns the signed value of a.
func Sign(key []byte, a Assignment) string {
	p := a.payload()
	return p + sep + base64.RawURLEncoding.EncodeToString(tag(nil, key, p))
}

// Parse reads a value without checking its tag, so that the caller can find
// the key of the experiment it names. Never trust its result: Verify it.
func Parse(value string) (Assignment, error) {
	var a Assignment
	if value == "" || len(value) > MaxValueLen {
		return a, ErrMalformed
	}
	f := strings.Split(value, sep)
	if len(f) != 8 || f[0] != Version {
		return a, ErrMalformed
	}
	for _, s := range f[1:6] {
		if s == "" {
			return a, ErrMalformed
		}
	}
	run, err := strconv.ParseInt(f[3], 10, 32)
	if err != nil || run < 1 || f[3] != strconv.FormatInt(run, 10) {
		return a, ErrMalformed
	}
	epoch, err := strconv.ParseInt(f[6], 10, 32)
	if err != nil || epoch < 0 || f[6] != strconv.FormatInt(epoch, 10) {
		return a, ErrMalformed
	}
	if len(f[7]) != base64.RawURLEncoding.EncodedLen(tagBytes) {
		return a, ErrMalformed
	}
	return Assignment{Namespace: f[1], Experiment: f[2], Run: int32(run), Segment: f[4], Variant: f[5], Epoch: int32(epoch)}, nil
}

// Verify parses value and checks its tag with key, in constant time.
func Verify(key []byte, value string) (Assignment, error) {
	a, err := Parse(value)
	if err != nil {
		return a, err
	}
	i := strings.LastIndex(value, sep)
	var got, want [tagBytes]byte
	if encoded := value[i+1:]; base64.RawURLEncoding.DecodedLen(len(encoded)) != tagBytes {
		return Assignment{}, ErrMalformed
	} else if _, err := base64.RawURLEncoding.Decode(got[:], []byte(encoded)); err != nil {
		return Assignment{}, ErrMalformed
	}
	if !hmac.Equal(got[:], tag(want[:0], key, value[:i])) {
		return Assignment{}, ErrForged
	}
	return a, nil
}

// DefaultMaxAge is the cookie's lifetime when the experiment sets none.
const DefaultMaxAge = 24 * time.Hour

// CookieName is the default cookie name of an experiment.
func CookieName(experiment string) string { return "rapport-" + experiment }

// SetCookie renders the Set-Cookie header value the gateway adds. The
// cookie is readable by scripts (the survey intercept sends its value in
// the answer's body), host-only, for the whole site, and SameSite=Lax.
func SetCookie(name, value string, maxAge time.Duration, secure bool) string {
	s := fmt.Sprintf("%s=%s; Path=/; Max-Age=%d; SameSite=Lax", name, value, int64(maxAge/time.Second))
	if secure {
		s += "; Secure"
	}
	return s
}
