package feedback

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// referenceDecode is how payloads were decoded before DecodeJSON read
// tokens itself: encoding/json with numbers kept as text, then whole
// numbers as int64 and others as float64.
func referenceDecode(body []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if rest := strings.Trim(string(body[dec.InputOffset():]), " \t\r\n"); rest != "" {
		// (the old code asked dec.More(), which let a stray } or ] through)
		return nil, errors.New("more than one value")
	}
	var conv func(v any) any
	conv = func(v any) any {
		switch t := v.(type) {
		case json.Number:
			if i, err := strconv.ParseInt(string(t), 10, 64); err == nil {
				return i
			}
			f, _ := t.Float64()
			return f
		case map[string]any:
			for k, e := range t {
				t[k] = conv(e)
			}
		case []any:
			for i, e := range t {
				t[i] = conv(e)
			}
		}
		return v
	}
	return conv(v), nil
}

// TestDecodeJSONAsEncodingJSON decodes every provider fixture and a set of
// edge cases both ways and wants the same values.
func TestDecodeJSONAsEncodingJSON(t *testing.T) {
	cases := map[string][]byte{
		"whole and fractional numbers": []byte(`{"a": 0, "b": -0, "c": 1e2, "d": -12.5e-3, "e": 9223372036854775807, "f": 9223372036854775808, "g": 4.0}`),
		"a name twice: the last wins":  []byte(`{"score": 1, "score": 5}`),
		"escapes":                      []byte(`{"s": "a\"b\\c\u00e9\ud83d\ude00\n", "\u0061": true}`),
		"invalid UTF-8 is replaced":    []byte("{\"s\": \"a\xffb\"}"),
		"empty containers":             []byte(`{"o": {}, "a": [], "n": null, "t": [true, false, null]}`),
		"top-level array":              []byte(` [1, "x", {"y": [2.5]}] `),
		"top-level scalar":             []byte(`"just a string"`),
		"nested at the limit":          []byte(strings.Repeat(`{"a":`, maxDepth) + `1` + strings.Repeat(`}`, maxDepth)),
		"surrogates":                   []byte(`["\ud83d\ude00", "\ud83dx", "\ud83d\u0041", "\ud83d\ud83d\ude00", "\ude00", "\ud83d"]`),
		"non-ASCII, valid and not":     []byte("[\"caf\u00e9 caf\xc3\xa9\", \"\xef\xbf\xbd\", \"\xed\xa0\x80\", \"a\xc3\", \"\xf0\x9f\x98\x80\\n\"]"),
		"every escape":                 []byte(`"\" \\ \/ \b \f \n \r \t \u0000 \u00FF"`),
		"numbers":                      []byte(`[-0.0, 1E+2, 1e-2, 0, -1, 123456789012345678901234567890, 0.1e1]`),
		"whitespace everywhere":        []byte(" \t\r\n{ \"a\" : [ 1 , { } ] , \"b\" :null }\n"),
	}
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		cases[f] = b
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			want, err := referenceDecode(body)
			if err != nil {
				t.Fatalf("encoding/json: %v", err)
			}
			got, err := DecodeJSON(body)
			if err != nil {
				t.Fatalf("DecodeJSON: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("DecodeJSON = %#v\nencoding/json gives %#v", got, want)
			}
		})
	}
}

func TestDecodeJSONRefuses(t *testing.T) {
	for name, tt := range map[string]struct{ body, want string }{
		"empty":                        {``, "not JSON"},
		"two values":                   {`{"a":1} {"b":2}`, "more than one JSON value"},
		"cut short":                    {`{"a":`, "not JSON"},
		"cut short in a list":          {`[1, 2`, "not JSON"},
		"trailing comma":               {`{"a": 1,}`, "not JSON"},
		"bare word":                    {`{"a": yes}`, "not JSON"},
		"control character":            {"[\"a\tb\"]", "control characters must be escaped"},
		"unknown escape":               {`["\x41"]`, "after a backslash"},
		"short \\u escape":             {`["\u12"]`, "four hex digits"},
		"bad escape after a surrogate": {`["\ud83d\uzzzz"]`, "four hex digits"},
		"leading zero":                 {`[01]`, "not JSON"},
		"lone minus":                   {`[-]`, "in a number"},
		"no fraction digits":           {`[1.]`, "fraction"},
		"no exponent digits":           {`[1e]`, "exponent"},
		"string cut short":             {`{"a": "b`, "ends in a string"},
		"missing colon":                {`{"a" 1}`, "after an object's name"},
		"name not a string":            {`{a: 1}`, "object's name"},
		"truncated literal":            {`[tru]`, "in true"},
		"out of range":                 {`{"d": 1e400}`, "out of range"},
		"nested past the limit":        {strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1), "nested more than 64"},
		"deep objects":                 {strings.Repeat(`{"a":`, maxDepth+1) + `1` + strings.Repeat(`}`, maxDepth+1), "nested more than 64"},
	} {
		t.Run(name, func(t *testing.T) {
			v, err := DecodeJSON([]byte(tt.body))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("DecodeJSON(%.30q) = %v, %v; want an error containing %q", tt.body, v, err, tt.want)
			}
		})
	}
}

func BenchmarkDecodeJSON(b *testing.B) {
	body, err := os.ReadFile(filepath.Join("testdata", "typeform-form_response.json"))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.Run("bytes", func(b *testing.B) {
		for b.Loop() {
			if _, err := DecodeJSON(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("for-the-mapping", func(b *testing.B) {
		m, err := Compile(cxv1.ProviderTypeform, nil)
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := m.Decode(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("for-cel", func(b *testing.B) {
		// A mapping with an expression CEL evaluates: the payload is
		// indexed for it, then built for CEL (Payload.Value).
		m, err := Compile(cxv1.ProviderTypeform, &cxv1.FeedbackMapping{Accept: `body.event_type == 'form_response'`})
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			p, err := m.Decode(body)
			if err != nil {
				b.Fatal(err)
			}
			if p.Value() == nil {
				b.Fatal("no value")
			}
			p.Release()
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			if _, err := referenceDecode(body); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// FuzzDecodeJSON checks DecodeJSON against encoding/json on any input: the
// same values when both decode it, and a refusal when encoding/json refuses
// it. DecodeJSON refuses more only where it means to: nesting past
// maxDepth and numbers out of float64's range.
//
//	go test ./internal/feedback/ -run '^$' -fuzz FuzzDecodeJSON -fuzztime 60s
func FuzzDecodeJSON(f *testing.F) {
	addFixtures(f)
	for _, s := range []string{`{"a": 1, "a": 2}`, "\"\xff\"", `"\ud800"`, `[1e2, -0, 0.5]`, `{"a":`, `1 2`, ` null `, `{"a":{"b":[]}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		want, werr := referenceDecode(body)
		got, err := DecodeJSON(body)
		switch {
		case werr != nil && err == nil:
			t.Fatalf("DecodeJSON(%q) = %#v; encoding/json refuses it: %v", body, got, werr)
		case werr == nil && err != nil:
			if strings.Contains(err.Error(), "nested more than") || strings.Contains(err.Error(), "out of range") {
				return
			}
			t.Fatalf("DecodeJSON(%q) refused it: %v; encoding/json gives %#v", body, err, want)
		case werr == nil && !reflect.DeepEqual(got, want):
			t.Fatalf("DecodeJSON(%q) = %#v; encoding/json gives %#v", body, got, want)
		}
	})
}

// TestDecodeJSONDoesNotEchoTheBody: refusals reach the client, the log and
// the FeedbackSource's status, so they quote positions, not the body.
func TestDecodeJSONDoesNotEchoTheBody(t *testing.T) {
	for name, body := range map[string]string{
		"a huge number":        "[1" + strings.Repeat("0", 1<<20) + "]",
		"a long bad string":    `["` + strings.Repeat("a", 1<<20) + "\x01\"]",
		"a long word":          "[" + strings.Repeat("x", 1<<20) + "]",
		"a byte past ASCII":    "[\xef\xbb\xbf1]",
		"a long invalid value": `{"a": ` + strings.Repeat("-", 1<<20) + `}`,
	} {
		_, err := DecodeJSON([]byte(body))
		if err == nil || len(err.Error()) > 200 {
			t.Errorf("%s: error %.300q (%d bytes), want a refusal under 200 bytes", name, err, len(fmt.Sprint(err)))
		}
	}
}

// addFixtures seeds a fuzzer with the providers' fixtures.
func addFixtures(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}
