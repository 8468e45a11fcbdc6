package feedback

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	celast "github.com/google/cel-go/common/ast"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// String renders what r reads: "*" for everything, else the sorted names,
// each with what is read below it in braces unless that is everything.
func (r *reads) String() string {
	if r.whole() {
		return "*"
	}
	var parts []string
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range r.fields {
			if !yield(k) {
				return
			}
		}
	}) {
		if below := r.fields[k]; below.whole() {
			parts = append(parts, k)
		} else {
			parts = append(parts, k+"{"+below.String()+"}")
		}
	}
	return strings.Join(parts, " ")
}

func TestReadsOfExpressions(t *testing.T) {
	e, err := celEnv()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		exprs []string
		want  string
	}{
		{[]string{`body.a.b`}, "a{b}"},
		{[]string{`body.a.b`, `body.a.c == 'x'`}, "a{b c}"},
		{[]string{`body.a.b`, `body.a`}, "a"},
		{[]string{`body.?a.?b.orValue('')`}, "a{b}"},
		{[]string{`body['a']['b c']`}, "a{b c}"},
		{[]string{`body[?'a'].orValue(1)`}, "a"},
		{[]string{`has(body.a.b)`}, "a{b}"},
		{[]string{`body.a.list[0].x`}, "a{list}"},
		{[]string{`body.a.list.filter(x, x.y == 1).size()`}, "a{list}"},
		{[]string{`body.a[body.k]`}, "a k"},
		{[]string{`body.a[body.k.j]`}, "a k{j}"},
		{[]string{`size(body) > 0`}, "*"},
		{[]string{`type(body.a) == map ? body.a.?b.orValue('') : ''`}, "a"},
		{[]string{`[1, 2].exists(body, body == 1) || body.a == 1`}, "*"},
		{[]string{`headers['x'] == 'y'`}, ""},
		{[]string{`true`}, ""},
		{[]string{`response.pages.size()`, `body.event_id`}, "event_id"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.exprs, "; "), func(t *testing.T) {
			r := &reads{}
			for _, src := range tt.exprs {
				a, iss := e.Compile(src)
				if iss.Err() != nil {
					t.Fatal(iss.Err())
				}
				r.addExpr(celast.NavigateAST(a.NativeRep()))
			}
			if got := r.String(); got != tt.want {
				t.Fatalf("reads %q, want %q", got, tt.want)
			}
		})
	}
}

// TestReadsOfTheDefaults shows what each provider's default mapping reads,
// and that Decode leaves the rest out.
func TestReadsOfTheDefaults(t *testing.T) {
	want := map[cxv1.FeedbackProvider]string{
		cxv1.ProviderTypeform:     "event_id event_type form_response{answers hidden{rapport} submitted_at token}",
		cxv1.ProviderSurveyMonkey: "event_datetime event_id event_type object_id resources{respondent_id survey_id}",
		cxv1.ProviderSurvicate:    "event messageId",
		cxv1.ProviderDelighted:    "event_data{created_at person{id} person_properties score} event_id event_type",
		cxv1.ProviderGeneric:      "assignment at experiment id respondent score segment variant",
	}
	for p, w := range want {
		m, err := Compile(p, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.reads.String(); got != w {
			t.Errorf("%s reads %q, want %q", p, got, w)
		}
	}
	v := decodedForDefaults(t, cxv1.ProviderTypeform, "typeform-form_response.json")
	fr := v.Value().(map[string]any)["form_response"].(map[string]any)
	if _, ok := fr["definition"]; ok {
		t.Error("the form's definition was decoded, though no expression reads it")
	}
	if got := fmt.Sprint(fr["hidden"]); got != "map[rapport:"+testAssignment+"]" {
		t.Errorf("hidden = %s, want only rapport", got)
	}
}

// decodedForDefaults is a fixture decoded for the provider's default mapping.
func decodedForDefaults(t *testing.T, p cxv1.FeedbackProvider, file string) *Payload {
	t.Helper()
	m, err := Compile(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := m.Decode(fixture(t, file))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestSurveyMonkeyResponseSurvivesDecode: the collector fetches the
// response a SurveyMonkey webhook names from members no default expression
// reads; Decode must keep them.
func TestSurveyMonkeyResponseSurvivesDecode(t *testing.T) {
	v := decodedForDefaults(t, cxv1.ProviderSurveyMonkey, "surveymonkey-response_completed.json")
	if survey, response := SurveyMonkeyResponse(v); survey != "405112233" || response != "118855447700" {
		t.Fatalf("SurveyMonkeyResponse = %q, %q; want 405112233, 118855447700", survey, response)
	}
	if survey, response := SurveyMonkeyResponse(payloadOf(t, map[string]any{"resources": "x", "object_id": 5})); survey != "" || response != "" {
		t.Fatalf("SurveyMonkeyResponse of a payload without them = %q, %q; want empty", survey, response)
	}
}

// mappingsUnderTest are the defaults and user mappings that read payloads
// in every way the read analysis knows.
func mappingsUnderTest(t testing.TB) []*Mapping {
	var out []*Mapping
	for _, p := range providers {
		m, err := Compile(p, nil)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	for _, user := range []cxv1.FeedbackMapping{
		{Accept: `has(body.a) && body.a.?b.orValue(0) != 7`, EventID: `body['id']`, Score: `int(body.a.scores[0])`, Respondent: `body.?who.?name.orValue('')`},
		{EventID: `string(body.a.b)`, Score: `size(body.list.filter(x, has(x.s)))`, Assignment: `type(body.h) == map ? body.h.?rapport.orValue('') : ''`},
	} {
		m, err := Compile(cxv1.ProviderGeneric, &user)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// sameOutcome checks that a mapping sees the same thing in a payload
// decoded whole and decoded for it: the same refusal, or the same Accept
// and Map results, errors included.
func sameOutcome(t *testing.T, m *Mapping, body []byte) {
	t.Helper()
	full, ferr := newPayload(body, everything)
	part, perr := m.Decode(body)
	if fmt.Sprint(ferr) != fmt.Sprint(perr) {
		t.Fatalf("%s: DecodeJSON(%q) error %v, Decode error %v", m.provider, body, ferr, perr)
	}
	if ferr != nil {
		return
	}
	fa, faErr := m.Accept(Input{Payload: full})
	pa, paErr := m.Accept(Input{Payload: part})
	fe, feErr := m.Map(Input{Payload: full})
	pe, peErr := m.Map(Input{Payload: part})
	if fa != pa || fmt.Sprint(faErr) != fmt.Sprint(paErr) || !reflect.DeepEqual(fe, pe) || fmt.Sprint(feErr) != fmt.Sprint(peErr) {
		t.Fatalf("%s on %q: whole payload gives accept %v (%v), %+v (%v); decoded for the mapping %v (%v), %+v (%v)",
			m.provider, body, fa, faErr, fe, feErr, pa, paErr, pe, peErr)
	}
}

func TestDecodeForAMappingAsWhole(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	bodies := [][]byte{
		[]byte(`{"id":"e","score":4,"a":{"b":1,"scores":[3.0]},"list":[{"s":1},{"t":2}],"h":{"rapport":"x","n":[1e2]},"who":{"name":"n","age":3}}`),
		[]byte(`{"id":"e","score":4,"junk":{"deep":[{"x":"\ud83d\ude00\u00e9"}],"n":-0.5e-3}, "a":{"b":"two"}}`),
		[]byte(`{"id":"e","junk":{"n":1e400}}`),
		[]byte(`{"id":"e","junk":"\u12"}`),
		[]byte(`{"id":"e","junk":"a` + "\t" + `b"}`),
		[]byte(`{"id":"e","junk":` + strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth) + `}`),
		[]byte(`{"id":"e","junk":{"a" 1}}`),
		[]byte(`{"id":"e","junk":[1,]}`),
		[]byte(`{"id":"e","a":{"b":1},"a":{"c":2}}`),
		[]byte(`{"\u0069d":"escaped name","score":5}`),
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, []byte(strings.ReplaceAll(string(b), "{{ASSIGNMENT}}", testAssignment)))
	}
	for _, m := range mappingsUnderTest(t) {
		for _, b := range bodies {
			sameOutcome(t, m, b)
		}
	}
}

// FuzzDecodeForAMapping holds Decode to DecodeJSON on any input, for every
// mapping of mappingsUnderTest.
//
//	go test ./internal/feedback/ -run '^$' -fuzz FuzzDecodeForAMapping -fuzztime 60s
func FuzzDecodeForAMapping(f *testing.F) {
	addFixtures(f)
	f.Add([]byte(`{"id":"e","score":4,"a":{"b":1,"scores":[3]},"list":[{"s":1}],"h":{"rapport":"x"},"who":{"name":"n"}}`))
	ms := mappingsUnderTest(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, m := range ms {
			sameOutcome(t, m, body)
		}
	})
}

// TestReadsHeaders: the collector builds the headers' map only for a
// mapping whose expressions name it; a mapping that reads a header must
// still see it.
func TestReadsHeaders(t *testing.T) {
	tests := []struct {
		provider cxv1.FeedbackProvider
		mapping  *cxv1.FeedbackMapping
		want     bool
	}{
		{cxv1.ProviderTypeform, nil, false},
		{cxv1.ProviderSurveyMonkey, nil, false},
		{cxv1.ProviderSurvicate, nil, false},
		{cxv1.ProviderDelighted, nil, false},
		{cxv1.ProviderGeneric, nil, false},
		{cxv1.ProviderGeneric, &cxv1.FeedbackMapping{Segment: `headers[?'x-segment'].orValue('all')`}, true},
		{cxv1.ProviderGeneric, &cxv1.FeedbackMapping{Accept: `headers.exists(k, k == 'x-test') == false`}, true},
		{cxv1.ProviderTypeform, &cxv1.FeedbackMapping{Accept: `has(headers.x) || true`}, true},
		{cxv1.ProviderTypeform, &cxv1.FeedbackMapping{Accept: `[1].exists(headers, headers == 1)`}, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%v", tt.provider, tt.mapping), func(t *testing.T) {
			m, err := Compile(tt.provider, tt.mapping)
			if err != nil {
				t.Fatal(err)
			}
			if got := m.ReadsHeaders(); got != tt.want {
				t.Fatalf("ReadsHeaders() = %v, want %v", got, tt.want)
			}
		})
	}
	m, err := Compile(cxv1.ProviderGeneric, &cxv1.FeedbackMapping{Segment: `headers[?'x-segment'].orValue('all')`})
	if err != nil {
		t.Fatal(err)
	}
	in := Input{Payload: payloadOf(t, map[string]any{"id": "e1", "score": 4, "experiment": "x", "variant": "v"}), Headers: map[string]string{"x-segment": "mobile"}}
	ev, err := m.Map(in)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Segment != "mobile" {
		t.Fatalf("segment %q, want mobile from the header", ev.Segment)
	}
	in.Headers = nil
	if ev, err = m.Map(in); err != nil || ev.Segment != "all" {
		t.Fatalf("without headers: segment %q (%v), want all", ev.Segment, err)
	}
}
