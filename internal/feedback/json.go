package feedback

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"

	"github.com/go-json-experiment/json/jsontext"
)

// maxDepth bounds the nesting of a payload.
const maxDepth = 64

// DecodeJSON decodes a payload for the expressions: objects become
// map[string]any, arrays []any, whole numbers int64 (so that `int` and
// comparisons with integers work) and other numbers float64. The body must
// be one JSON value; nesting is bounded. As with encoding/json, a name that
// appears twice in an object keeps its last value and invalid UTF-8 in a
// string is replaced, not refused (providers' payloads are signed as sent);
// anything but whitespace after the value is refused.
//
// It reads the body's tokens once (jsontext, the tokenizer of the
// encoding/json/v2 proposal) and builds the values as it goes: about a
// third of encoding/json's time for a Typeform payload, which mattered
// because decoding was the largest part of a webhook's CPU.
func DecodeJSON(body []byte) (any, error) {
	dec := jsontext.NewDecoder(bytes.NewReader(body), jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	v, err := decodeValue(dec, 0)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("the body is not JSON: %v", err)
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return nil, errors.New("the body holds more than one JSON value; send one object")
	}
	return v, nil
}

func decodeValue(dec *jsontext.Decoder, depth int) (any, error) {
	tok, err := dec.ReadToken()
	if err != nil {
		return nil, err
	}
	if k := tok.Kind(); (k == '{' || k == '[') && depth >= maxDepth {
		return nil, fmt.Errorf("the body is nested more than %d levels deep", maxDepth)
	}
	switch tok.Kind() {
	case 'n':
		return nil, nil
	case 't':
		return true, nil
	case 'f':
		return false, nil
	case '"':
		return tok.String(), nil
	case '0':
		s := tok.String()
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return i, nil
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsInf(f, 0) {
			return nil, fmt.Errorf("number %s is out of range", s)
		}
		return f, nil
	case '{':
		m := map[string]any{}
		for dec.PeekKind() != '}' {
			name, err := dec.ReadToken()
			if err != nil {
				return nil, err
			}
			k := name.String()
			v, err := decodeValue(dec, depth+1)
			if err != nil {
				return nil, err
			}
			m[k] = v
		}
		if _, err := dec.ReadToken(); err != nil {
			return nil, err
		}
		return m, nil
	case '[':
		a := []any{}
		for dec.PeekKind() != ']' {
			v, err := decodeValue(dec, depth+1)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		if _, err := dec.ReadToken(); err != nil {
			return nil, err
		}
		return a, nil
	}
	return nil, fmt.Errorf("unexpected %v", tok.Kind())
}
