package feedback

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// pruned is v, decoded whole, without the members of objects that r does
// not read: what decoding for r must give, built independently of the
// index (lists are read whole).
func pruned(v any, r *reads) any {
	switch v := v.(type) {
	case map[string]any:
		m := map[string]any{}
		for k, e := range v {
			if below, read := r.member([]byte(k)); read {
				m[k] = pruned(e, below)
			}
		}
		return m
	}
	return v
}

// sameAsDecoded checks that decoding body for what r reads refuses it as
// decoding it whole does, word for word, or gives the whole value without
// what r does not read. DecodeJSON itself is held to encoding/json
// (TestDecodeJSONAsEncodingJSON, FuzzDecodeJSON).
func sameAsDecoded(t *testing.T, body []byte, r *reads) {
	t.Helper()
	whole, werr := DecodeJSON(body)
	got, err := decodeReads(body, r)
	if fmt.Sprint(err) != fmt.Sprint(werr) {
		t.Fatalf("%q for %s: decoding it whole gives error %v, for the reads %v", body, r, werr, err)
	}
	if err != nil {
		return
	}
	if want := pruned(whole, r); !reflect.DeepEqual(got, want) {
		t.Fatalf("%q for %s: decoding for the reads gives %#v, the whole value without the rest %#v", body, r, got, want)
	}
	x, err := indexReads(body, r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if last := x.nodes[root].next; int(last) != len(x.nodes) {
		t.Fatalf("%q: the root's subtree ends at node %d of %d", body, last, len(x.nodes))
	}
}

// readsUnderTest are everything, and what each mapping of
// mappingsUnderTest reads.
func readsUnderTest(t testing.TB) []*reads {
	out := []*reads{everything}
	for _, m := range mappingsUnderTest(t) {
		out = append(out, m.reads)
	}
	return out
}

// indexCases are bodies with every turn of the parser: numbers at the
// edges of int64 and of the fast path (18 characters), escapes in names
// and values, a name twice, invalid UTF-8, and every refusal.
var indexCases = []string{
	`{"a": 0, "b": -0, "c": 1e2, "d": -12.5e-3, "e": 9223372036854775807, "f": 9223372036854775808, "g": 4.0, "h": -9223372036854775808, "i": -9223372036854775809}`,
	`[999999999999999999, -99999999999999999, 1000000000000000000, -999999999999999999, 123456789012345678901234567890, -0.0, 1E+2, 0.1e1]`,
	`{"score": 1, "score": 5, "id": "a", "\u0069d": "escaped name wins", "event": {"x": 1}, "event": "then a string"}`,
	`{"s": "a\"b\\c\u00e9\ud83d\ude00\n", "\u0061": true, "form_response": {"hidden": {"rapport": "x\/y"}, "answers": [{"field": {"type": "nps"}, "number": 4}]}}`,
	"{\"id\": \"a\xffb\", \"caf\xc3\xa9\": 1, \"score\": \"\xed\xa0\x80\"}",
	`{"o": {}, "a": [], "n": null, "t": [true, false, null], "id": null, "score": [], "event": {}}`,
	` [1, "x", {"y": [2.5]}] `, `"just a string"`, `7`, `true`, `null`,
	strings.Repeat(`{"a":`, maxDepth) + `1` + strings.Repeat(`}`, maxDepth),
	strings.Repeat(`{"a":`, maxDepth+1) + `1` + strings.Repeat(`}`, maxDepth+1),
	`{"id": "e", "junk": ` + strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth) + `}`,
	`{"id": "e", "junk": ` + strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1) + `}`,
	``, ` `, `{"a":1} {"b":2}`, `{"a":`, `[1, 2`, `{"a": 1,}`, `{"a": yes}`, "[\"a\tb\"]", "{\"a\tb\": 1}",
	`["\x41"]`, `{"id": "\x41"}`, `["\u12"]`, `{"\u12": 1}`, `["\ud83d\uzzzz"]`, `[01]`, `[-]`, `[1.]`, `[1e]`, `{"a": "b`,
	`{"a" 1}`, `{a: 1}`, `[tru]`, `{"d": 1e400}`, `{"junk": 1e400}`, `{"id": -1e400}`, `[1 2]`, `{"a":1 "b":2}`, `}`, `]`,
}

// TestIndexAsDecode holds decoding for what a mapping reads (the index,
// built) to decoding the whole payload, for everything and for what each
// mapping under test reads: the same refusals, the same values.
func TestIndexAsDecode(t *testing.T) {
	bodies := indexCases
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, string(b))
	}
	for _, r := range readsUnderTest(t) {
		for _, b := range bodies {
			sameAsDecoded(t, []byte(b), r)
		}
	}
}

// FuzzIndexAsDecode does what TestIndexAsDecode does on any input.
//
//	go test ./internal/feedback/ -run '^$' -fuzz FuzzIndexAsDecode -fuzztime 60s
func FuzzIndexAsDecode(f *testing.F) {
	addFixtures(f)
	for _, b := range indexCases {
		f.Add([]byte(b))
	}
	rs := readsUnderTest(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, r := range rs {
			sameAsDecoded(t, body, r)
		}
	})
}

// TestIndexMember: a member is found by its decoded name, the last of two
// with the same name wins, and only objects have members.
func TestIndexMember(t *testing.T) {
	x, err := indexReads([]byte(`{"a": 1, "b": {"c": "x"}, "\u0061": 2, "caf\u00e9": 3, "list": [{"a": 4}]}`), everything, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		path []string
		want any // nil: not found
	}{
		{[]string{"a"}, int64(2)},
		{[]string{"b", "c"}, "x"},
		{[]string{"café"}, int64(3)},
		{[]string{"b", "c", "d"}, nil},
		{[]string{"list", "a"}, nil},
		{[]string{"z"}, nil},
	} {
		at, ok := x.walk(root, tt.path)
		var got any
		if ok {
			got = x.build(at)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("walk(%q) = %#v (found %v), want %#v", tt.path, got, ok, tt.want)
		}
	}
}

// TestPayloadReuse decodes two payloads in turn, releasing each, with a
// mapping whose fields CEL evaluates (so that the decoded value is built
// and kept) beside natives: every event must be its own payload's, however
// the pool hands Payloads back.
func TestPayloadReuse(t *testing.T) {
	m, err := Compile(cxv1.ProviderGeneric, &cxv1.FeedbackMapping{Respondent: `body.?who.orValue('') + '!'`})
	if err != nil {
		t.Fatal(err)
	}
	bodies := []string{
		`{"id":"a","score":1,"experiment":"x","who":"alice"}`,
		`{"id":"b","score":2,"experiment":"y","who":"bob","pad":[` + strings.Repeat(`{"n":1},`, 100) + `0]}`,
	}
	for i := range 40 {
		n := i % len(bodies)
		p, err := m.Decode([]byte(bodies[n]))
		if err != nil {
			t.Fatal(err)
		}
		ev, err := m.Map(Input{Payload: p})
		p.Release()
		want := []Event{
			{EventID: "a", Score: 1, Experiment: "x", Respondent: "alice!"},
			{EventID: "b", Score: 2, Experiment: "y", Respondent: "bob!"},
		}[n]
		if err != nil || !reflect.DeepEqual(ev, want) {
			t.Fatalf("decode %d: %+v (%v), want %+v", i, ev, err, want)
		}
	}
}
