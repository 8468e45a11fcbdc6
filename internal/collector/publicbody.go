package collector

import (
	"bytes"
	"encoding/json"
)

// decodePublicAnswer decodes a browser's answer as json.Decoder with
// DisallowUnknownFields does (and refuses data after the object), with the
// same results and the same errors: the body the survey intercept sends is
// read by hand (quickPublicAnswer), and any other body by encoding/json.
// Reflection was about a twentieth of a browser answer's CPU.
func decodePublicAnswer(body []byte) (publicAnswer, error) {
	if a, ok := quickPublicAnswer(body); ok {
		return a, nil
	}
	var a publicAnswer
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		return publicAnswer{}, err
	}
	if dec.More() {
		return publicAnswer{}, orEOF(nil)
	}
	return a, nil
}

// quickPublicAnswer reads the answers the survey intercept sends: one
// object whose members are among assignment, respondent (strings of
// printable ASCII without escapes) and score (a whole number), each at
// most once, with JSON whitespace around the tokens. It declines (ok
// false) everything else, which encoding/json then decodes:
// FuzzDecodePublicAnswer holds the two to the same results.
func quickPublicAnswer(b []byte) (a publicAnswer, ok bool) {
	i := spaceFrom(b, 0)
	if i >= len(b) || b[i] != '{' {
		return a, false
	}
	i = spaceFrom(b, i+1)
	if i < len(b) && b[i] == '}' {
		return a, spaceFrom(b, i+1) == len(b)
	}
	var seen [3]bool
	for {
		name, j, ok := plainString(b, i)
		if !ok {
			return a, false
		}
		i = spaceFrom(b, j)
		if i >= len(b) || b[i] != ':' {
			return a, false
		}
		i = spaceFrom(b, i+1)
		switch string(name) {
		case "assignment", "respondent":
			s, j, ok := plainString(b, i)
			if !ok {
				return a, false
			}
			if string(name) == "assignment" {
				if seen[0] {
					return a, false
				}
				seen[0], a.Assignment = true, string(s)
			} else {
				if seen[1] {
					return a, false
				}
				seen[1], a.Respondent = true, string(s)
			}
			i = j
		case "score":
			j := wholeNumber(b, i)
			if j == i || seen[2] {
				return a, false
			}
			seen[2], a.Score = true, json.RawMessage(b[i:j:j])
			i = j
		default:
			return a, false
		}
		i = spaceFrom(b, i)
		if i >= len(b) {
			return a, false
		}
		switch b[i] {
		case ',':
			i = spaceFrom(b, i+1)
		case '}':
			return a, spaceFrom(b, i+1) == len(b)
		default:
			return a, false
		}
	}
}

// spaceFrom returns the index of the first byte at or after i that is not
// JSON whitespace.
func spaceFrom(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// plainString reads a JSON string at i made of printable ASCII without
// escapes, and returns its bytes and the index after its closing quote.
func plainString(b []byte, i int) ([]byte, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, i, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return b[i+1 : j], j + 1, true
		case c == '\\' || c < 0x20 || c > 0x7e:
			return nil, i, false
		}
	}
	return nil, i, false
}

// wholeNumber returns the index after a JSON integer at i (-?(0|[1-9][0-9]*)
// not followed by a fraction or exponent), or i when there is none.
func wholeNumber(b []byte, i int) int {
	j := i
	if j < len(b) && b[j] == '-' {
		j++
	}
	start := j
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		j++
	}
	if j == start || (b[start] == '0' && j-start > 1) {
		return i
	}
	if j < len(b) && (b[j] == '.' || b[j] == 'e' || b[j] == 'E') {
		return i
	}
	return j
}

// isRespondent reports whether s is what the survey intercept generates:
// 8 to 64 characters of A-Z, a-z, 0-9, '-' and '_' (an opaque random id;
// the server never stores it, only its digest within the key). It is the
// pattern ^[A-Za-z0-9_-]{8,64}$ (FuzzIsRespondent).
func isRespondent(s string) bool {
	if len(s) < 8 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}
