package feedback

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth bounds the nesting of a payload.
const maxDepth = 64

// DecodeJSON decodes a payload for the expressions: objects become
// map[string]any, arrays []any, whole numbers int64 (so that `int` and
// comparisons with integers work) and other numbers float64. The body must
// be one JSON value (RFC 8259); nesting is bounded. As with encoding/json, a
// name that appears twice in an object keeps its last value, and invalid
// UTF-8 or a lone surrogate escape in a string is replaced with U+FFFD, not
// refused (providers' payloads are signed as sent); anything but whitespace
// after the value is refused.
//
// It reads the body's bytes in one pass into an index (index.go: where
// each value lies, a number's value), then builds the values from the
// index; a payload indexed for a mapping's Go expressions is built from
// the same index when CEL needs it (Payload.Value), without reading the
// body again. Decoding was once the largest part of a webhook's CPU;
// BenchmarkDecodeJSON compares this with encoding/json, and FuzzDecodeJSON
// holds it to encoding/json's values and refusals.
func DecodeJSON(body []byte) (any, error) {
	return decodeReads(body, everything)
}

// decodeReads decodes what r reads of body; the rest is checked and left
// out (see reads).
func decodeReads(body []byte, r *reads) (any, error) {
	p, err := newPayload(body, r) // its index, reused: the values built hold none of it
	if err != nil {
		return nil, err
	}
	defer p.Release()
	return p.doc.build(root), nil
}

// end checks that only whitespace follows the body's value.
func (p *parser) end() error {
	p.space()
	if p.i < len(p.b) {
		return errors.New("the body holds more than one JSON value; send one object")
	}
	return nil
}

// parser reads one JSON value from b, from i on.
type parser struct {
	b []byte
	i int
}

var errNesting = fmt.Errorf("the body is nested more than %d levels deep", maxDepth)

func (p *parser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// unexpected describes the byte at i, or the end of the body.
func (p *parser) unexpected(what string) error {
	if p.i >= len(p.b) {
		return fmt.Errorf("the body ends %s", what)
	}
	if c := p.b[p.i]; c < 0x20 || c >= utf8.RuneSelf {
		return fmt.Errorf("unexpected byte %#02x at byte %d %s", c, p.i, what)
	}
	return fmt.Errorf("unexpected %q at byte %d %s", p.b[p.i], p.i, what)
}

func (p *parser) literal(word string) error {
	if len(p.b)-p.i < len(word) || string(p.b[p.i:p.i+len(word)]) != word {
		return p.unexpected("in " + word)
	}
	p.i += len(word)
	return nil
}

// next reads what follows a member or an element: a comma (more follow,
// whitespace skipped) or end (the container ends); anything else is an
// error, described as what.
func (p *parser) next(end byte, what string) (more bool, err error) {
	p.space()
	if p.i < len(p.b) {
		switch p.b[p.i] {
		case ',':
			p.i++
			p.space()
			return true, nil
		case end:
			p.i++
			return false, nil
		}
	}
	return false, p.unexpected(what)
}

// colon reads the colon after an object's name, and the whitespace around
// it.
func (p *parser) colon() error {
	p.space()
	if p.i >= len(p.b) || p.b[p.i] != ':' {
		return p.unexpected("after an object's name")
	}
	p.i++
	p.space()
	return nil
}

// skip checks a value that starts at i as indexing it would (index.value),
// without indexing it: a member the mapping does not read.
func (p *parser) skip(depth int) error {
	if p.i >= len(p.b) {
		return p.unexpected("where a value was expected")
	}
	switch c := p.b[p.i]; c {
	case '{', '[':
		if depth >= maxDepth {
			return errNesting
		}
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		p.i++
		p.space()
		if p.i < len(p.b) && p.b[p.i] == end {
			p.i++
			return nil
		}
		for {
			if end == '}' {
				if p.i >= len(p.b) || p.b[p.i] != '"' {
					return p.unexpected("where an object's name was expected")
				}
				if err := p.skipString(); err != nil {
					return err
				}
				if err := p.colon(); err != nil {
					return err
				}
			}
			if err := p.skip(depth + 1); err != nil {
				return err
			}
			what := "after an array's element"
			if end == '}' {
				what = "after an object's value"
			}
			if more, err := p.next(end, what); !more {
				return err
			}
		}
	case '"':
		return p.skipString()
	}
	_, _, err := p.scalar() // numbers and literals: nothing to save
	return err
}

// skipString checks a string at i (its opening quote) as name would,
// without building it.
func (p *parser) skipString() error {
	for j := p.i + 1; j < len(p.b); j++ {
		switch c := p.b[j]; {
		case c == '"':
			p.i = j + 1
			return nil
		case c < 0x20:
			p.i = j
			return p.unexpected("in a string (control characters must be escaped)")
		case c == '\\':
			if j+1 >= len(p.b) {
				p.i = len(p.b)
				return p.unexpected("in a string's escape")
			}
			switch p.b[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j++
			case 'u':
				if _, ok := hex4(p.b[j+2:]); !ok {
					p.i = j + 2
					return p.unexpected("in a \\u escape (four hex digits expected)")
				}
				j += 5
			default:
				p.i = j + 1
				return p.unexpected("after a backslash in a string")
			}
		}
	}
	p.i = len(p.b)
	return p.unexpected("in a string")
}

// name reads a string at i (its opening quote) as bytes: the body's own
// when it has no escapes or bytes to replace (an object's name then needs
// no copy to look it up), else a new slice.
func (p *parser) name() ([]byte, error) {
	start := p.i + 1
	for j := start; j < len(p.b); j++ {
		switch c := p.b[j]; {
		case c == '"':
			p.i = j + 1
			return p.b[start:j], nil
		case c == '\\' || c >= utf8.RuneSelf:
			return p.slowString(start, j)
		case c < 0x20:
			p.i = j
			return nil, p.unexpected("in a string (control characters must be escaped)")
		}
	}
	p.i = len(p.b)
	return nil, p.unexpected("in a string")
}

// slowString reads the rest of a string from j, where an escape or a byte
// of a multi-byte sequence is, with the plain bytes from start to j first.
func (p *parser) slowString(start, j int) ([]byte, error) {
	out := make([]byte, 0, j-start+16)
	out = append(out, p.b[start:j]...)
	for j < len(p.b) {
		c := p.b[j]
		switch {
		case c == '"':
			p.i = j + 1
			return out, nil
		case c < 0x20:
			p.i = j
			return nil, p.unexpected("in a string (control characters must be escaped)")
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(p.b[j:])
			if r == utf8.RuneError && size == 1 {
				out = utf8.AppendRune(out, utf8.RuneError)
			} else {
				out = append(out, p.b[j:j+size]...)
			}
			j += size
		case c != '\\':
			out = append(out, c)
			j++
		default:
			if j+1 >= len(p.b) {
				p.i = len(p.b)
				return nil, p.unexpected("in a string's escape")
			}
			e := p.b[j+1]
			j += 2
			switch e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r, ok := hex4(p.b[j:])
				if !ok {
					p.i = j
					return nil, p.unexpected("in a \\u escape (four hex digits expected)")
				}
				j += 4
				if utf16.IsSurrogate(r) {
					// A pair combines into one rune; anything else leaves
					// U+FFFD, and what follows is read on its own.
					pair := utf8.RuneError
					if len(p.b)-j >= 6 && p.b[j] == '\\' && p.b[j+1] == 'u' {
						if r2, ok := hex4(p.b[j+2:]); ok {
							pair = utf16.DecodeRune(r, r2)
						}
					}
					if r = pair; r != utf8.RuneError {
						j += 6
					}
				}
				out = utf8.AppendRune(out, r)
			default:
				p.i = j - 1
				return nil, p.unexpected("after a backslash in a string")
			}
		}
	}
	p.i = len(p.b)
	return nil, p.unexpected("in a string")
}

// hex4 reads four hex digits.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// numberValue is a number's value: i when whole, else f.
type numberValue struct {
	whole bool
	i     int64
	f     float64
}

// num reads a number at i: int64 when it is whole and fits, else
// float64.
func (p *parser) num() (numberValue, error) {
	start := p.i
	whole, err := p.scanNumber()
	if err != nil {
		return numberValue{}, err
	}
	s := p.b[start:p.i]
	if whole && len(s) <= 18 {
		// At most 18 characters: no more than 18 digits, which int64
		// holds; strconv's copy of the bytes is not needed.
		var i int64
		for _, c := range s {
			if c != '-' {
				i = i*10 + int64(c-'0')
			}
		}
		if s[0] == '-' {
			i = -i
		}
		return numberValue{whole: true, i: i}, nil
	}
	if whole {
		if i, err := strconv.ParseInt(string(s), 10, 64); err == nil {
			return numberValue{whole: true, i: i}, nil
		}
	}
	f, err := strconv.ParseFloat(string(s), 64)
	if err != nil || math.IsInf(f, 0) {
		return numberValue{}, fmt.Errorf("the number at byte %d is out of range", start)
	}
	return numberValue{f: f}, nil
}

// scanNumber reads a number's bytes at i (RFC 8259's grammar) and reports
// whether it has neither a fraction nor an exponent.
func (p *parser) scanNumber() (whole bool, err error) {
	digits := func() int {
		n := 0
		for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	if p.b[p.i] == '-' {
		p.i++
	}
	switch {
	case p.i < len(p.b) && p.b[p.i] == '0':
		p.i++
	case digits() == 0:
		return false, p.unexpected("in a number")
	}
	whole = true
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		whole = false
		if digits() == 0 {
			return false, p.unexpected("in a number's fraction")
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		whole = false
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return false, p.unexpected("in a number's exponent")
		}
	}
	return whole, nil
}
