package assignment

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

func TestSignVerifyRoundTrip(t *testing.T) {
	for _, a := range []Assignment{
		{Namespace: "shop", Experiment: "checkout", Run: 1, Segment: "enterprise", Variant: "one-page", Epoch: 3},
		{Namespace: "shop", Experiment: "checkout.v2", Run: 12, Segment: "all", Variant: "control"},
		{Namespace: "a", Experiment: strings.Repeat("e", 253), Run: 2147483647, Segment: "new.customers", Variant: "v", Epoch: 2147483647},
	} {
		v := Sign(testKey, a)
		got, err := Verify(testKey, v)
		if err != nil {
			t.Fatalf("Verify(%q): %v", v, err)
		}
		if got != a {
			t.Errorf("Verify(Sign(%+v)) = %+v", a, got)
		}
		if p, _ := Parse(v); p != a {
			t.Errorf("Parse(Sign(%+v)) = %+v", a, p)
		}
		// Every character of a cookie value must be a cookie-octet (RFC 6265).
		for _, c := range v {
			if c <= 0x20 || c == '"' || c == ',' || c == ';' || c == '\\' || c >= 0x7f {
				t.Errorf("value %q holds %q, not a cookie-octet", v, c)
			}
		}
	}
}

func TestSignKnownVector(t *testing.T) {
	// A fixed vector (computed independently with Python's hmac module),
	// repeated in docs/measurement.md for apps that sign
	// the assignment themselves: changing the format breaks them.
	a := Assignment{Namespace: "shop", Experiment: "checkout", Run: 1, Segment: "enterprise", Variant: "one-page", Epoch: 0}
	const want = "1~shop~checkout~1~enterprise~one-page~0~aXiJU0HF45TJQGFRsh5dmg"
	if got := Sign(testKey, a); got != want {
		t.Errorf("Sign = %q, want %q", got, want)
	}
}

func TestVerifyRefuses(t *testing.T) {
	good := Sign(testKey, Assignment{Namespace: "shop", Experiment: "checkout", Run: 1, Segment: "enterprise", Variant: "control"})
	i := strings.LastIndex(good, "~")
	tests := []struct {
		name  string
		value string
		key   []byte
		want  error
	}{
		{"another variant claimed", strings.Replace(good, "~control~", "~one-page~", 1), testKey, ErrForged},
		{"another run claimed", strings.Replace(good, "~checkout~1~", "~checkout~2~", 1), testKey, ErrForged},
		{"another key", good, []byte("ffffffffffffffffffffffffffffffff"), ErrForged},
		{"tag flipped", good[:i+1] + "A" + good[i+2:], testKey, ErrForged},
		{"empty", "", testKey, ErrMalformed},
		{"no tag", good[:i], testKey, ErrMalformed},
		{"short tag", good[:len(good)-1], testKey, ErrMalformed},
		{"long tag", good + "AAAA", testKey, ErrMalformed},
		{"unknown version", "2" + good[1:], testKey, ErrMalformed},
		{"run zero", strings.Replace(good, "~checkout~1~", "~checkout~0~", 1), testKey, ErrMalformed},
		{"run with a sign", strings.Replace(good, "~checkout~1~", "~checkout~+1~", 1), testKey, ErrMalformed},
		{"negative epoch", strings.Replace(good, "~control~0~", "~control~-1~", 1), testKey, ErrMalformed},
		{"empty variant", strings.Replace(good, "~control~", "~~", 1), testKey, ErrMalformed},
		{"extra field", "x~" + good, testKey, ErrMalformed},
		{"too long", good + strings.Repeat("a", MaxValueLen), testKey, ErrMalformed},
		{"tag not base64url", good[:i+1] + strings.Repeat("+", 22), testKey, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Verify(tt.key, tt.value)
			if !errors.Is(err, tt.want) {
				t.Errorf("Verify(%q) = %v, want %v", tt.value, err, tt.want)
			}
		})
	}
}

func TestSetCookie(t *testing.T) {
	if got, want := SetCookie("rapport-checkout", "v", 24*time.Hour, true), "rapport-checkout=v; Path=/; Max-Age=86400; SameSite=Lax; Secure"; got != want {
		t.Errorf("SetCookie = %q, want %q", got, want)
	}
	if got, want := SetCookie("c", "v", time.Minute, false), "c=v; Path=/; Max-Age=60; SameSite=Lax"; got != want {
		t.Errorf("SetCookie = %q, want %q", got, want)
	}
}

func TestSecretName(t *testing.T) {
	if got := SecretName("checkout"); got != "checkout-assignment-key" {
		t.Errorf("SecretName = %q", got)
	}
	long := strings.Repeat("a", 240) + ".b-c"
	got := SecretName(long)
	if len(got) > 253 || !strings.HasSuffix(got, "-assignment-key") || strings.Contains(got, ".-") {
		t.Errorf("SecretName(long) = %q (%d characters)", got, len(got))
	}
	if SecretName(long) == SecretName(strings.Repeat("a", 240)+".b-d") {
		t.Error("two long names share a Secret")
	}
}

// TestDocumentedVector: docs/measurement.md gives apps that sign the
// assignment themselves the same vector as TestSignKnownVector.
func TestDocumentedVector(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "measurement.md"))
	if err != nil {
		t.Fatal(err)
	}
	const want = "key `0123456789abcdef0123456789abcdef` (the ASCII bytes), payload\n   `1~shop~checkout~1~enterprise~one-page~0` → tag `aXiJU0HF45TJQGFRsh5dmg`"
	if !strings.Contains(string(doc), want) {
		t.Fatalf("docs/measurement.md does not give the test vector:\n%s", want)
	}
	if got := Sign(testKey, Assignment{Namespace: "shop", Experiment: "checkout", Run: 1, Segment: "enterprise", Variant: "one-page"}); !strings.HasSuffix(got, "~aXiJU0HF45TJQGFRsh5dmg") {
		t.Fatalf("the documented tag is not what Sign computes: %s", got)
	}
}

// BenchmarkVerify: the check of every browser answer's assignment.
//
//	go test ./internal/assignment/ -run '^$' -bench Verify -benchmem
func BenchmarkVerify(b *testing.B) {
	value := Sign(testKey, Assignment{Namespace: "shop", Experiment: "checkout", Run: 1, Segment: "enterprise", Variant: "control"})
	for b.Loop() {
		if _, err := Verify(testKey, value); err != nil {
			b.Fatal(err)
		}
	}
}
