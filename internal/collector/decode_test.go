package collector

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// testExperiment returns a running experiment of the given metric; segments
// may be empty.
func testExperiment(metric cxv1.SatisfactionMetricKind, segments ...string) *cxv1.CXExperiment {
	return &cxv1.CXExperiment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "checkout"},
		Spec: cxv1.CXExperimentSpec{
			Variants: []cxv1.Variant{{Name: "control", Control: true}, {Name: "one-page"}},
			Segments: segments,
			Satisfaction: cxv1.Satisfaction{
				Metric: metric,
				Source: cxv1.SatisfactionSource{Collector: &cxv1.CollectorSource{}},
			},
		},
		Status: cxv1.CXExperimentStatus{Phase: cxv1.PhaseProgressing, Run: 1},
	}
}

func TestDecode(t *testing.T) {
	csat := testExperiment(cxv1.MetricCSAT, "enterprise", "smb")
	nps := testExperiment(cxv1.MetricNPS)
	csat7 := testExperiment(cxv1.MetricCSAT)
	seven := int32(7)
	csat7.Spec.Satisfaction.ScaleMax = &seven
	broken := testExperiment("Stars")
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

	const j, nd = ContentTypeJSON, ContentTypeNDJSON
	tests := []struct {
		name string
		exp  *cxv1.CXExperiment
		ct   string
		body string
		want []Response
		code int    // expected error code, 0 for success
		msg  string // substring of the error message
	}{
		// Accepted input.
		{name: "full response", exp: csat, ct: j,
			body: `{"responses":[{"variant":"one-page","segment":"enterprise","score":4,"respondent":"c-123","channel":"web","at":"2026-11-23T10:00:00Z"}]}`,
			want: []Response{{Variant: "one-page", Segment: "enterprise", Score: 4, At: at}}},
		{name: "content type with charset", exp: csat, ct: "application/json; charset=UTF-8",
			body: `{"responses":[{"variant":"control","segment":"smb","score":1}]}`,
			want: []Response{{Variant: "control", Segment: "smb", Score: 1}}},
		{name: "NPS bounds 0 and 10", exp: nps, ct: j,
			body: `{"responses":[{"variant":"control","score":0},{"variant":"one-page","score":10}]}`,
			want: []Response{{Variant: "control", Segment: "all", Score: 0}, {Variant: "one-page", Segment: "all", Score: 10}}},
		{name: "no segments: omitted, empty and all normalise to all", exp: nps, ct: j,
			body: `{"responses":[{"variant":"control","score":5},{"variant":"control","segment":"","score":5},{"variant":"control","segment":"all","score":5}]}`,
			want: []Response{{Variant: "control", Segment: "all", Score: 5}, {Variant: "control", Segment: "all", Score: 5}, {Variant: "control", Segment: "all", Score: 5}}},
		{name: "CSAT scaleMax 7 accepts 7", exp: csat7, ct: j,
			body: `{"responses":[{"variant":"control","score":7}]}`,
			want: []Response{{Variant: "control", Segment: "all", Score: 7}}},
		{name: "ndjson with blank lines and CRLF", exp: csat, ct: nd,
			body: "\n{\"variant\":\"control\",\"segment\":\"smb\",\"score\":5}\r\n\n  \n{\"variant\":\"one-page\",\"segment\":\"enterprise\",\"score\":2}",
			want: []Response{{Variant: "control", Segment: "smb", Score: 5}, {Variant: "one-page", Segment: "enterprise", Score: 2}}},
		{name: "application/ndjson alias", exp: nps, ct: "application/ndjson",
			body: `{"variant":"control","score":9}` + "\n",
			want: []Response{{Variant: "control", Segment: "all", Score: 9}}},
		{name: "free text at the limit", exp: nps, ct: j,
			body: fmt.Sprintf(`{"responses":[{"variant":"control","score":9,"respondent":%q,"channel":%q}]}`, strings.Repeat("é", 256), strings.Repeat("w", 256)),
			want: []Response{{Variant: "control", Segment: "all", Score: 9}}},
		{name: "negative zero is zero", exp: nps, ct: j,
			body: `{"responses":[{"variant":"control","score":-0}]}`,
			want: []Response{{Variant: "control", Segment: "all", Score: 0}}},

		// Content type.
		{name: "missing content type", exp: csat, ct: "", body: `{}`, code: 415, msg: "Content-Type is missing"},
		{name: "text/plain", exp: csat, ct: "text/plain", body: `{}`, code: 415, msg: `"text/plain" is not supported`},
		{name: "unparseable content type", exp: csat, ct: "application/json; ;;", body: `{}`, code: 415, msg: "cannot be parsed"},
		{name: "latin1 charset", exp: csat, ct: "application/json; charset=latin1", body: `{}`, code: 415, msg: "charset"},

		// Document shape.
		{name: "empty body", exp: csat, ct: j, body: ``, code: 400, msg: "body is empty"},
		{name: "empty batch", exp: csat, ct: j, body: `{"responses":[]}`, code: 400, msg: "batch is empty"},
		{name: "no responses field", exp: csat, ct: j, body: `{}`, code: 400, msg: "batch is empty"},
		{name: "array instead of object", exp: csat, ct: j, body: `[{"variant":"control"}]`, code: 400, msg: "expected an object"},
		{name: "responses not an array", exp: csat, ct: j, body: `{"responses":5}`, code: 400, msg: "responses: expected an array"},
		{name: "unknown top-level field", exp: csat, ct: j, body: `{"responses":[],"extra":1}`, code: 400, msg: `unknown field "extra"`},
		{name: "trailing data", exp: csat, ct: j, body: `{"responses":[{"variant":"control","segment":"smb","score":4}]} {}`, code: 400, msg: "unexpected data after the JSON object"},
		{name: "syntax error", exp: csat, ct: j, body: `{"responses":[{"variant":"control",}]}`, code: 400, msg: "invalid JSON"},
		{name: "truncated JSON", exp: csat, ct: j, body: `{"responses":[{"variant":"control"`, code: 400, msg: "ends early"},
		{name: "response not an object", exp: csat, ct: j, body: `{"responses":[null]}`, code: 400, msg: "responses[0]: expected an object"},
		{name: "too many responses", exp: nps, ct: j, body: batchJSON(1001), code: 413, msg: "responses: more than 1000 responses in one batch; split the batch"},
		{name: "responses null", exp: csat, ct: j, body: `{"responses":null}`, code: 400, msg: "batch is empty"},
		{name: "responses twice", exp: nps, ct: j, body: `{"responses":[{"variant":"control","score":4}],"responses":[{"variant":"control","score":4}]}`, code: 400, msg: "responses is given twice"},
		{name: "field names are case-sensitive at the top", exp: nps, ct: j, body: `{"Responses":[{"variant":"control","score":4}]}`, code: 400, msg: `unknown field "Responses"`},
		{name: "string instead of object", exp: nps, ct: j, body: `"responses"`, code: 400, msg: "body: expected an object, got a string"},
		{name: "responses not closed", exp: nps, ct: j, body: `{"responses":[{"variant":"control","score":4}`, code: 400, msg: "ends early"},

		// Fields.
		{name: "unknown response field", exp: csat, ct: j, body: `{"responses":[{"variant":"control","segment":"smb","score":4,"comment":"great"}]}`, code: 400, msg: `responses[0]: unknown field "comment"; allowed fields are variant`},
		{name: "missing score", exp: csat, ct: j, body: `{"responses":[{"variant":"control","segment":"smb"}]}`, code: 400, msg: "responses[0].score: is required; send a whole number on the CSAT scale 1..5"},
		{name: "null score", exp: csat, ct: j, body: `{"responses":[{"variant":"control","segment":"smb","score":null}]}`, code: 400, msg: "score: is required"},
		{name: "CSAT score above scale", exp: csat, ct: j, body: `{"responses":[{"variant":"control","segment":"smb","score":7}]}`, code: 400, msg: "responses[0].score: 7 is outside the CSAT scale 1..5"},
		{name: "CSAT score 0 below scale", exp: csat, ct: j, body: `{"responses":[{"variant":"control","segment":"smb","score":0}]}`, code: 400, msg: "0 is outside the CSAT scale 1..5"},
		{name: "CSAT scaleMax 7 rejects 8", exp: csat7, ct: j, body: `{"responses":[{"variant":"control","score":8}]}`, code: 400, msg: "8 is outside the CSAT scale 1..7"},
		{name: "NPS score 11", exp: nps, ct: j, body: `{"responses":[{"variant":"control","score":11}]}`, code: 400, msg: "11 is outside the NPS scale 0..10"},
		{name: "NPS score -1", exp: nps, ct: j, body: `{"responses":[{"variant":"control","score":-1}]}`, code: 400, msg: "-1 is outside the NPS scale 0..10"},
		{name: "float score", exp: csat, ct: j, body: `{"responses":[{"variant":"control","segment":"smb","score":4.5}]}`, code: 400, msg: "4.5 is not a whole number"},
		{name: "float that is whole", exp: csat, ct: j, body: `{"responses":[{"variant":"control","segment":"smb","score":4.0}]}`, code: 400, msg: "4.0 is not a whole number"},
		{name: "exponent score", exp: csat, ct: j, body: `{"responses":[{"variant":"control","segment":"smb","score":4e0}]}`, code: 400, msg: "4e0 is not a whole number"},
		{name: "string score", exp: csat, ct: j, body: `{"responses":[{"variant":"control","segment":"smb","score":"4"}]}`, code: 400, msg: `"4" is a string`},
		{name: "NaN string score", exp: csat, ct: j, body: `{"responses":[{"variant":"control","segment":"smb","score":"NaN"}]}`, code: 400, msg: `"NaN" is a string`},
		{name: "bare NaN is not JSON", exp: csat, ct: j, body: `{"responses":[{"variant":"control","segment":"smb","score":NaN}]}`, code: 400, msg: "invalid JSON"},
		{name: "boolean score", exp: csat, ct: j, body: `{"responses":[{"variant":"control","segment":"smb","score":true}]}`, code: 400, msg: "true is not a number"},
		{name: "overflowing score", exp: csat, ct: j, body: `{"responses":[{"variant":"control","segment":"smb","score":99999999999999999999999}]}`, code: 400, msg: "99999999999999999999999 is outside the CSAT scale"},
		{name: "missing variant", exp: csat, ct: j, body: `{"responses":[{"segment":"smb","score":4}]}`, code: 400, msg: "responses[0].variant is required; one of control, one-page"},
		{name: "unknown variant", exp: csat, ct: j, body: `{"responses":[{"variant":"two-page","segment":"smb","score":4}]}`, code: 400, msg: `responses[0].variant: "two-page" is not a variant of the experiment; use one of control, one-page`},
		{name: "variant not a string", exp: csat, ct: j, body: `{"responses":[{"variant":3,"segment":"smb","score":4}]}`, code: 400, msg: "responses[0].variant: expected a string, got a JSON number"},
		{name: "unknown segment", exp: csat, ct: j, body: `{"responses":[{"variant":"control","segment":"consumer","score":4}]}`, code: 400, msg: `responses[0].segment: "consumer" is not a segment of the experiment; use one of enterprise, smb`},
		{name: "missing segment when required", exp: csat, ct: j, body: `{"responses":[{"variant":"control","score":4}]}`, code: 400, msg: "responses[0].segment is required; one of enterprise, smb"},
		{name: "all is no segment when segments exist", exp: csat, ct: j, body: `{"responses":[{"variant":"control","segment":"all","score":4}]}`, code: 400, msg: `"all" is not a segment of the experiment`},
		{name: "segment on experiment without segments", exp: nps, ct: j, body: `{"responses":[{"variant":"control","segment":"smb","score":4}]}`, code: 400, msg: `the experiment has no segments, so omit segment or send "all"`},
		{name: "oversize respondent", exp: nps, ct: j, body: fmt.Sprintf(`{"responses":[{"variant":"control","score":4,"respondent":%q}]}`, strings.Repeat("x", 257)), code: 400, msg: "respondent: 257 characters, at most 256"},
		{name: "oversize channel", exp: nps, ct: j, body: fmt.Sprintf(`{"responses":[{"variant":"control","score":4,"channel":%q}]}`, strings.Repeat("x", 300)), code: 400, msg: "channel: 300 characters, at most 256"},
		{name: "bad at", exp: nps, ct: j, body: `{"responses":[{"variant":"control","score":4,"at":"yesterday"}]}`, code: 400, msg: `responses[0].at: "yesterday" is not an RFC 3339 time`},
		{name: "at without zone", exp: nps, ct: j, body: `{"responses":[{"variant":"control","score":4,"at":"2026-11-23T10:00:00"}]}`, code: 400, msg: "is not an RFC 3339 time"},
		{name: "error names the failing index", exp: nps, ct: j, body: `{"responses":[{"variant":"control","score":4},{"variant":"control","score":4},{"variant":"nope","score":4}]}`, code: 400, msg: "responses[2].variant"},
		{name: "long bad value is clipped", exp: nps, ct: j, body: fmt.Sprintf(`{"responses":[{"variant":%q,"score":4}]}`, strings.Repeat("v", 5000)), code: 400, msg: `..." is not a variant`},

		// NDJSON line errors.
		{name: "ndjson bad score names the line", exp: csat, ct: nd, body: "{\"variant\":\"control\",\"segment\":\"smb\",\"score\":4}\n\n{\"variant\":\"control\",\"segment\":\"smb\",\"score\":9}\n", code: 400, msg: "line 3: score: 9 is outside the CSAT scale 1..5"},
		{name: "ndjson syntax error", exp: csat, ct: nd, body: "{\"variant\":\"control\",\"segment\":\"smb\",\"score\":4}\n{\"variant\":", code: 400, msg: "line 2: the JSON ends early"},
		{name: "ndjson not an object", exp: csat, ct: nd, body: "[1,2]\n", code: 400, msg: "line 1: expected an object"},
		{name: "ndjson two objects on a line", exp: nps, ct: nd, body: `{"variant":"control","score":4} {"variant":"control","score":4}`, code: 400, msg: "line 1: unexpected data after the object"},
		{name: "ndjson unknown field", exp: nps, ct: nd, body: `{"variant":"control","score":4,"Comment":"x"}`, code: 400, msg: `line 1: unknown field "Comment"`},
		{name: "ndjson object over two lines", exp: nps, ct: nd, body: "{\"variant\":\"control\",\n\"score\":4}\n", code: 400, msg: "line 1: the object does not end on its line"},
		{name: "ndjson garbage after object", exp: nps, ct: nd, body: "{\"variant\":\"control\",\"score\":4}}\n", code: 400, msg: "line 1: unexpected data after the object"},
		{name: "ndjson bad line after good lines", exp: nps, ct: nd, body: "{\"variant\":\"control\",\"score\":4}\n{\"variant\":\"control\",\"score\":4}\nnot json\n", code: 400, msg: "line 3: expected an object such as {\"variant\":\"control\",\"score\":10}, got not json"},
		{name: "ndjson type error names the field", exp: nps, ct: nd, body: "\n\n{\"variant\":[1],\"score\":4}", code: 400, msg: "line 3: variant: expected a string, got a JSON array"},
		{name: "ndjson empty", exp: nps, ct: nd, body: "\n\n  \n", code: 400, msg: "batch is empty"},
		{name: "ndjson too many", exp: nps, ct: nd, body: strings.Repeat(`{"variant":"control","score":4}`+"\n", 1001), code: 413, msg: "line 1001: more than 1000 responses"},

		// Experiment.
		{name: "experiment with invalid metric", exp: broken, ct: j, body: `{"responses":[{"variant":"control","score":4}]}`, code: 409, msg: "cannot take responses"},
		{name: "experiment without variants", exp: &cxv1.CXExperiment{}, ct: nd, body: `x`, code: 409, msg: "spec.variants is empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decode(tc.ct, []byte(tc.body), tc.exp, DefaultMaxBatch)
			if tc.code == 0 {
				if err != nil {
					t.Fatalf("Decode: unexpected error %v", err)
				}
				if fmt.Sprint(got) != fmt.Sprint(tc.want) {
					t.Fatalf("Decode = %v, want %v", got, tc.want)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Decode error = %v (%T), want *Error with code %d", err, err, tc.code)
			}
			if e.Code != tc.code || !strings.Contains(e.Message, tc.msg) {
				t.Fatalf("Decode error = %d %q, want %d containing %q", e.Code, e.Message, tc.code, tc.msg)
			}
			if got != nil {
				t.Fatalf("Decode returned responses with an error: %v", got)
			}
			if len(e.Message) > 600 {
				t.Fatalf("message is %d bytes long; client text must be clipped", len(e.Message))
			}
		})
	}
}

func TestDecodeMaxBatchBoundary(t *testing.T) {
	exp := testExperiment(cxv1.MetricNPS)
	got, err := Decode(ContentTypeJSON, []byte(batchJSON(1000)), exp, 1000)
	if err != nil || len(got) != 1000 {
		t.Fatalf("1000 responses with MaxBatch 1000: got %d, %v", len(got), err)
	}
	if _, err := Decode(ContentTypeJSON, []byte(batchJSON(3)), exp, 2); err == nil || err.(*Error).Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("3 responses with MaxBatch 2: got %v, want 413", err)
	}
}

func TestCheckKey(t *testing.T) {
	for _, tc := range []struct {
		values []string
		ok     bool
	}{
		{nil, true},
		{[]string{"4f1c-22"}, true},
		{[]string{"a b~"}, true},
		{[]string{strings.Repeat("k", 128)}, true},
		{[]string{strings.Repeat("k", 129)}, false},
		{[]string{""}, false},
		{[]string{"tab\there"}, false},
		{[]string{"clé"}, false},
		{[]string{"a", "b"}, false},
	} {
		if got := checkKey(tc.values) == ""; got != tc.ok {
			t.Errorf("checkKey(%q) ok = %v, want %v", tc.values, got, tc.ok)
		}
	}
}

// batchJSON is a valid JSON batch of n NPS responses without segments.
func batchJSON(n int) string {
	var b strings.Builder
	b.WriteString(`{"responses":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"variant":"%s","score":%d,"respondent":"c-%d","channel":"web","at":"2026-11-23T10:00:00Z"}`, []string{"control", "one-page"}[i%2], i%11, i)
	}
	b.WriteString(`]}`)
	return b.String()
}

// BenchmarkDecode measures decode+validate of a full JSON batch and of the
// same batch as NDJSON: go test ./internal/collector -run '^$' -bench Decode -benchmem
func BenchmarkDecode(b *testing.B) {
	exp := testExperiment(cxv1.MetricNPS)
	body := []byte(batchJSON(DefaultMaxBatch))
	b.Run("json-1000", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if _, err := Decode(ContentTypeJSON, body, exp, DefaultMaxBatch); err != nil {
				b.Fatal(err)
			}
		}
	})
	var nd strings.Builder
	for i := range DefaultMaxBatch {
		fmt.Fprintf(&nd, `{"variant":"control","score":%d,"respondent":"c-%d","channel":"web","at":"2026-11-23T10:00:00Z"}`+"\n", i%11, i)
	}
	ndBody := []byte(nd.String())
	b.Run("ndjson-1000", func(b *testing.B) {
		b.SetBytes(int64(len(ndBody)))
		for b.Loop() {
			if _, err := Decode(ContentTypeNDJSON, ndBody, exp, DefaultMaxBatch); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// FuzzDecode checks Decode's contract on any input: no panic; an error is
// an *Error with 400, 409, 413 or 415; success means 1..maxBatch responses,
// each on the experiment's scale, variants and segments.
//
//	go test ./internal/collector -run '^$' -fuzz FuzzDecode -fuzztime 60s
func FuzzDecode(f *testing.F) {
	f.Add(ContentTypeJSON, []byte(`{"responses":[{"variant":"control","segment":"smb","score":4}]}`))
	f.Add(ContentTypeNDJSON, []byte("{\"variant\":\"one-page\",\"segment\":\"enterprise\",\"score\":1}\n\n{\"variant\":\"control\",\"segment\":\"smb\",\"score\":5}"))
	f.Add(ContentTypeJSON, []byte(`{"responses":[{"variant":"control","score":4.5}],"x":1}`))
	f.Add("application/json; charset=utf-8", []byte(`{"responses":null}`))
	exp := testExperiment(cxv1.MetricCSAT, "enterprise", "smb")
	const maxBatch = 5
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		got, err := Decode(ct, body, exp, maxBatch)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v is not an *Error", err)
			}
			switch e.Code {
			case 400, 409, 413, 415:
			default:
				t.Fatalf("error code %d", e.Code)
			}
			if got != nil {
				t.Fatal("responses returned with an error")
			}
			return
		}
		if len(got) == 0 || len(got) > maxBatch {
			t.Fatalf("%d responses accepted", len(got))
		}
		for _, r := range got {
			if r.Score < 1 || r.Score > 5 || (r.Variant != "control" && r.Variant != "one-page") || (r.Segment != "enterprise" && r.Segment != "smb") {
				t.Fatalf("invalid response accepted: %+v", r)
			}
		}
	})
}
