package collector

import (
	"bytes"
	"regexp"
	"testing"
)

// sameAnswer checks decodePublicAnswer against encoding/json on body and
// reports whether the hand-written reader answered.
func sameAnswer(t *testing.T, body []byte) bool {
	t.Helper()
	want, wantErr := decodeAnswerJSON(body)
	got, gotErr := decodePublicAnswer(body)
	if (gotErr == nil) != (wantErr == nil) || gotErr != nil && jsonMessage(gotErr, "") != jsonMessage(wantErr, "") {
		t.Fatalf("%q: error %v, encoding/json gives %v", body, gotErr, wantErr)
	}
	// RawMessage: nil and empty are the same absent score.
	if got.Assignment != want.Assignment || got.Respondent != want.Respondent || !bytes.Equal(got.Score, want.Score) {
		t.Fatalf("%q: %+v, encoding/json gives %+v", body, got, want)
	}
	_, quick := quickPublicAnswer(body)
	return quick
}

func TestDecodePublicAnswer(t *testing.T) {
	tests := []struct {
		body  string
		quick bool // the hand-written reader answers
	}{
		{`{"assignment":"1~shop~checkout~1~all~control~0~sig","respondent":"r0000000000000001","score":4}`, true},
		{" \t\r\n{ \"score\" : -3 , \"respondent\":\"abcdefgh\" }\n", true},
		{`{}`, true},
		{`{"score":0}`, true},
		{`{"score":-0}`, true},
		{`{"assignment":""}`, true},
		// Declined: encoding/json decides.
		{`{"score":4.0}`, false},
		{`{"score":4e0}`, false},
		{`{"score":04}`, false},
		{`{"score":-}`, false},
		{`{"score":"4"}`, false},
		{`{"score":null}`, false},
		{`{"score":[4]}`, false},
		{`{"Score":4}`, false},
		{`{"SCORE":4,"Assignment":"a"}`, false},
		{`{"score":4,"score":5}`, false},
		{`{"assignment":"a","assignment":"b"}`, false},
		{`{"respondent":"r\u0041"}`, false},
		{`{"respondent":"caf\u00e9"}`, false},
		{"{\"respondent\":\"caf\xc3\xa9\"}", false},
		{"{\"respondent\":\"\xff\"}", false},
		{"{\"respondent\":\"a\tb\"}", false},
		{`{"extra":1}`, false},
		{`{"score":4}{"score":5}`, false},
		{`{"score":4} x`, false},
		{`{"score":4,}`, false},
		{`{"score":4`, false},
		{`{"score" 4}`, false},
		{`{,}`, false},
		{`[]`, false},
		{``, false},
		{`null`, false},
		{`{"assignment":1}`, false},
		{`{"score":4x}`, false},
		{`{"score":12345678901234567890}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			if quick := sameAnswer(t, []byte(tt.body)); quick != tt.quick {
				t.Fatalf("the hand-written reader answered: %v, want %v", quick, tt.quick)
			}
		})
	}
}

// FuzzDecodePublicAnswer holds decodePublicAnswer to encoding/json on any
// body.
//
//	go test ./internal/collector/ -run '^$' -fuzz FuzzDecodePublicAnswer -fuzztime 60s
func FuzzDecodePublicAnswer(f *testing.F) {
	for _, b := range []string{
		`{"assignment":"1~shop~checkout~1~all~control~0~sig","respondent":"r0000000000000001","score":4}`,
		`{ "score" : -12 , "respondent" : "abcdefgh" }`, `{"score":4.5}`, `{"Score":1}`, `{}`, `{"score":4}{}`,
	} {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		sameAnswer(t, body)
	})
}

var respondentPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{8,64}$`)

func TestIsRespondent(t *testing.T) {
	for _, s := range []string{"", "abcdefg", "abcdefgh", "ABC-def_0123", "abcdefg!", "abcdéfgh",
		"0123456789012345678901234567890123456789012345678901234567890123",
		"01234567890123456789012345678901234567890123456789012345678901234", "abcdefgh\n"} {
		if got, want := isRespondent(s), respondentPattern.MatchString(s); got != want {
			t.Errorf("isRespondent(%q) = %v, the pattern says %v", s, got, want)
		}
	}
}

// FuzzIsRespondent holds isRespondent to the pattern it replaces.
//
//	go test ./internal/collector/ -run '^$' -fuzz FuzzIsRespondent -fuzztime 30s
func FuzzIsRespondent(f *testing.F) {
	f.Add("r0000000000000001")
	f.Add("abc")
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := isRespondent(s), respondentPattern.MatchString(s); got != want {
			t.Fatalf("isRespondent(%q) = %v, the pattern says %v", s, got, want)
		}
	})
}

// BenchmarkDecodePublicAnswer compares the hand-written reader with
// encoding/json on the survey intercept's answer.
//
//	go test ./internal/collector/ -run '^$' -bench DecodePublicAnswer -benchmem
func BenchmarkDecodePublicAnswer(b *testing.B) {
	body := []byte(`{"assignment":"1~shop~checkout~1~enterprise~one-page~0~aXiJU0HF45TJQGFRsh5dmg","respondent":"r000000000000001","score":4}`)
	for _, bb := range []struct {
		name   string
		decode func([]byte) (publicAnswer, error)
	}{{"hand", decodePublicAnswer}, {"encoding-json", decodeAnswerJSON}} {
		b.Run(bb.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := bb.decode(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
