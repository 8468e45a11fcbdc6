package collector

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

// byValidation is what mayExist must agree with.
func byValidation(ns, name string) bool {
	return len(validation.IsDNS1123Label(ns)) == 0 && len(validation.IsDNS1123Subdomain(name)) == 0
}

var nameSeeds = [][2]string{
	{"shop", "checkout"}, {"a", "b"}, {"shop-1", "checkout.v2"}, {"0", "9.9"},
	{"", "checkout"}, {"shop", ""}, {"-shop", "x"}, {"shop-", "x"}, {"Shop", "x"}, {"shop", "Checkout"},
	{"shop", "a..b"}, {"shop", ".a"}, {"shop", "a."}, {"shop", "a-.b"}, {"shop", "a.-b"}, {"shop", "a_b"},
	{"sh.op", "x"}, {"shop", "a b"}, {"shop", "é"}, {"shop", "a/b"}, {"shop", "a\x00"},
	{strings.Repeat("a", 63), "x"}, {strings.Repeat("a", 64), "x"},
	{"shop", strings.Repeat("a", 253)}, {"shop", strings.Repeat("a", 254)},
	{"shop", strings.Repeat("a", 100) + "." + strings.Repeat("b", 100)},
}

func TestMayExistAgreesWithValidation(t *testing.T) {
	for _, s := range nameSeeds {
		if got, want := mayExist(s[0], s[1]), byValidation(s[0], s[1]); got != want {
			t.Errorf("mayExist(%q, %q) = %v, validation says %v", s[0], s[1], got, want)
		}
	}
}

// FuzzMayExist: go test ./internal/collector/ -run '^$' -fuzz FuzzMayExist
func FuzzMayExist(f *testing.F) {
	for _, s := range nameSeeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, ns, name string) {
		if got, want := mayExist(ns, name), byValidation(ns, name); got != want {
			t.Fatalf("mayExist(%q, %q) = %v, validation says %v", ns, name, got, want)
		}
	})
}
