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
	return decodeAnswerJSON(body)
}

// decodeAnswerJSON decodes a browser's answer with encoding/json: one
// object of publicAnswer's fields and nothing after it. It is the
// reference quickPublicAnswer is held to.
func decodeAnswerJSON(body []byte) (publicAnswer, error) {
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
	i := skipSpace(b)
	if i >= len(b) || b[i] != '{' {
		return a, false
	}
	i++
	i += skipSpace(b[i:])
	if i < len(b) && b[i] == '}' {
		return a, atEnd(b, i+1)
	}
	var seen [3]bool
	for {
		name, j, ok := plainString(b, i)
		if !ok {
			return a, false
		}
		i = j + skipSpace(b[j:])
		if i >= len(b) || b[i] != ':' {
			return a, false
		}
		i++
		i += skipSpace(b[i:])
		switch string(name) {
		case "assignment", "respondent":
			dst, k := &a.Assignment, 0
			if string(name) == "respondent" {
				dst, k = &a.Respondent, 1
			}
			s, j, ok := plainString(b, i)
			if !ok || seen[k] {
				return a, false
			}
			seen[k], *dst = true, string(s)
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
		i += skipSpace(b[i:])
		if i >= len(b) {
			return a, false
		}
		switch b[i] {
		case ',':
			i++
			i += skipSpace(b[i:])
		case '}':
			return a, atEnd(b, i+1)
		default:
			return a, false
		}
	}
}

// atEnd reports whether b holds only JSON whitespace from i on.
func atEnd(b []byte, i int) bool { return skipSpace(b[i:]) == len(b)-i }

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
