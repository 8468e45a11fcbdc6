package collector

// mayExist reports whether ns and name can name a namespaced object (a
// DNS-1123 label and a DNS-1123 subdomain): requests for names that cannot
// exist are answered without a lookup. It accepts what
// validation.IsDNS1123Label and IsDNS1123Subdomain accept, without their
// regular expressions, which cost a webhook about a microsecond.
func mayExist(ns, name string) bool {
	return len(ns) <= 63 && dnsLabels(ns, false) && len(name) <= 253 && dnsLabels(name, true)
}

// dnsLabels reports whether s is a DNS-1123 label ([a-z0-9], and '-' inside),
// or with dots, labels joined by dots.
func dnsLabels(s string, dots bool) bool {
	start := true // at the start of a label
	for i := range len(s) {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
			start = false
		case c == '-':
			if start {
				return false
			}
		case c == '.' && dots:
			if start || s[i-1] == '-' {
				return false
			}
			start = true
		default:
			return false
		}
	}
	return !start && s[len(s)-1] != '-'
}
