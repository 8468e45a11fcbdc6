package collector

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// Content types the collector reads.
const (
	ContentTypeJSON   = "application/json"
	ContentTypeNDJSON = "application/x-ndjson"
)

// maxFreeText bounds respondent and channel: they are checked, never stored.
const maxFreeText = 256

// Response is one validated satisfaction response. Only what is counted is
// kept: respondent and channel are validated and dropped.
type Response struct {
	Variant string
	// Segment is normalised: AllSegment for an experiment without segments.
	Segment string
	Score   int
	// At is when the customer answered; zero when the client did not say.
	At time.Time
	// Epoch is the allocation epoch in which the customer was served, when
	// the client knows it (from the signed assignment cookie or the
	// x-rapport-epoch request header); 0 when it does not, and the commit
	// assigns one (see assignEpochs).
	Epoch int32
}

// Error is a rejection with the HTTP status it maps to. Message names the
// field and the fix; it is returned to the client as {"error": Message}.
type Error struct {
	Code    int
	Message string
}

func (e *Error) Error() string { return e.Message }

func errorf(code int, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// wireResponse is a response as posted. Score is raw so that strings, floats
// and overflowing numbers are told apart instead of coerced.
type wireResponse struct {
	Variant    string          `json:"variant"`
	Segment    string          `json:"segment"`
	Score      json.RawMessage `json:"score"`
	Respondent string          `json:"respondent"`
	Channel    string          `json:"channel"`
	At         string          `json:"at"`
	Epoch      json.RawMessage `json:"epoch"`
}

// wireFields lists the accepted fields, for unknown-field messages.
const wireFields = "variant, segment, score, respondent, channel, at, epoch"

// scale is what validation needs from an experiment, computed once per batch.
type scale struct {
	metric   cxv1.SatisfactionMetricKind
	min, max int
	variants []string
	segments []string // empty: the experiment has no segments
	// status is each segment's status as the collector last saw it.
	status []cxv1.SegmentStatus
}

// epoch is a segment's current epoch as the collector last saw it, 0 when
// it has none.
func (sc scale) epoch(segment string) int32 {
	for _, s := range sc.status {
		if s.Name == segment {
			return s.Epoch
		}
	}
	return 0
}

func scaleOf(exp *cxv1.CXExperiment) (scale, error) {
	set, err := exp.JudgedSettings()
	if err != nil {
		return scale{}, err
	}
	sc := scale{metric: set.Metric, min: set.ScoreMin, max: set.ScoreMax, segments: exp.Spec.Segments, status: exp.Status.Segments,
		variants: make([]string, 0, len(exp.Spec.Variants))}
	for _, v := range exp.Spec.Variants {
		sc.variants = append(sc.variants, v.Name)
	}
	if len(sc.variants) == 0 {
		return sc, errors.New("spec.variants is empty")
	}
	return sc, nil
}

// Decode parses and validates a batch of responses for exp. It does no I/O,
// so it can be table-tested and fuzzed. Errors are *Error: 415 for a content
// type other than JSON or NDJSON, 413 for more than maxBatch responses, 409
// when exp's spec cannot be used (it bypassed CRD validation), 400 for
// anything else; one bad response rejects the whole batch.
func Decode(contentType string, body []byte, exp *cxv1.CXExperiment, maxBatch int) ([]Response, error) {
	kind, err := parseContentType(contentType)
	if err != nil {
		return nil, err
	}
	sc, serr := scaleOf(exp)
	if serr != nil {
		// The CRD schema rejects such specs, so this only happens when the
		// object bypassed validation; the fix is on the experiment.
		return nil, errorf(http.StatusConflict, "experiment %s cannot take responses: %v", exp.Name, serr)
	}
	if kind == ContentTypeNDJSON {
		return decodeNDJSON(body, sc, maxBatch)
	}
	return decodeJSON(body, sc, maxBatch)
}

func parseContentType(ct string) (string, *Error) {
	if ct == "" {
		return "", errorf(http.StatusUnsupportedMediaType, "Content-Type is missing; send %s or %s", ContentTypeJSON, ContentTypeNDJSON)
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return "", errorf(http.StatusUnsupportedMediaType, "Content-Type %q cannot be parsed; send %s or %s", clip(ct), ContentTypeJSON, ContentTypeNDJSON)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return "", errorf(http.StatusUnsupportedMediaType, "Content-Type charset %q is not supported; send UTF-8", clip(cs))
	}
	switch mt {
	case ContentTypeJSON:
		return ContentTypeJSON, nil
	case ContentTypeNDJSON, "application/ndjson":
		return ContentTypeNDJSON, nil
	}
	return "", errorf(http.StatusUnsupportedMediaType, "Content-Type %q is not supported; send %s or %s", clip(mt), ContentTypeJSON, ContentTypeNDJSON)
}

// decodeJSON walks {"responses":[...]} with one streaming decoder, so each
// response is parsed once and errors still name its index.
func decodeJSON(body []byte, sc scale, maxBatch int) ([]Response, error) {
	const shape = `; the body is {"responses":[...]}`
	bad := func(format string, args ...any) error {
		return errorf(http.StatusBadRequest, format, args...)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	tok, err := dec.Token()
	switch {
	case errors.Is(err, io.EOF):
		return nil, bad(`the body is empty; send {"responses":[{"variant":...,"score":...}]}`)
	case err != nil:
		return nil, bad("body: %s", jsonMessage(err, ""))
	case tok != json.Delim('{'):
		return nil, bad("body: expected an object, got %s%s", tokenKind(tok), shape)
	}
	var out []Response
	seen := false
	for dec.More() {
		if tok, err = dec.Token(); err != nil {
			return nil, bad("body: %s", jsonMessage(err, ""))
		}
		if tok != "responses" {
			return nil, bad("body: unknown field %q%s", clip(fmt.Sprint(tok)), shape)
		}
		if seen {
			return nil, bad("body: responses is given twice; send one array")
		}
		seen = true
		if tok, err = dec.Token(); err != nil {
			return nil, bad("responses: %s", jsonMessage(err, ""))
		}
		if tok == nil { // "responses": null reads as an empty batch
			continue
		}
		if tok != json.Delim('[') {
			return nil, bad("responses: expected an array, got %s", tokenKind(tok))
		}
		for i := 0; dec.More(); i++ {
			if i == maxBatch {
				return nil, errorf(http.StatusRequestEntityTooLarge, "responses: more than %d responses in one batch; split the batch", maxBatch)
			}
			var w *wireResponse
			if err := dec.Decode(&w); err != nil {
				return nil, bad("responses[%d]%s", i, elementError(err))
			}
			if w == nil {
				return nil, bad("responses[%d]: expected an object, got null", i)
			}
			r, msg := validate(w, sc)
			if msg != "" {
				return nil, bad("responses[%d]%s", i, msg)
			}
			out = append(out, r)
		}
		if _, err := dec.Token(); err != nil { // ]
			return nil, bad("responses: %s", jsonMessage(err, ""))
		}
	}
	if _, err := dec.Token(); err != nil { // }
		return nil, bad("body: %s", jsonMessage(err, ""))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, bad("body: unexpected data after the JSON object; send one object, or use %s for one response per line", ContentTypeNDJSON)
	}
	if len(out) == 0 {
		return nil, bad("responses: the batch is empty; send at least one response")
	}
	return out, nil
}

// tokenKind names a JSON token for messages.
func tokenKind(tok json.Token) string {
	switch tok.(type) {
	case json.Delim:
		if tok == json.Delim('[') {
			return "an array"
		}
		return "an object"
	case string:
		return "a string"
	case float64, json.Number:
		return "a number"
	case bool:
		return "a boolean"
	}
	return "null"
}

// decodeNDJSON reads one response object per line with a single streaming
// decoder; line numbers come from the decoder's offsets. Blank lines are
// skipped; two objects on a line, or one spread over lines, are rejected.
func decodeNDJSON(body []byte, sc scale, maxBatch int) ([]Response, error) {
	bad := func(line int, msg string) error {
		// Messages start with ".field" or ": "; a line has no parent path,
		// so ".score: ..." reads "line 3: score: ...".
		if rest, ok := strings.CutPrefix(msg, "."); ok {
			msg = ": " + rest
		}
		return errorf(http.StatusBadRequest, "line %d%s", line, msg)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var out []Response
	line, counted, lastLine := 1, 0, 0 // newlines are counted in body[:counted]
	for {
		start := int(dec.InputOffset())
		next := start + skipSpace(body[start:])
		line += bytes.Count(body[counted:next], []byte{'\n'})
		counted = next
		if next == len(body) {
			break
		}
		switch {
		case line == lastLine:
			return nil, bad(line, ": unexpected data after the object; send one object per line")
		case body[next] != '{':
			end := len(body)
			if i := bytes.IndexByte(body[next:], '\n'); i >= 0 {
				end = next + i
			}
			return nil, bad(line, fmt.Sprintf(": expected an object such as {\"variant\":%q,\"score\":%d}, got %s", sc.variants[0], sc.max, clip(string(body[next:end]))))
		case len(out) == maxBatch:
			return nil, errorf(http.StatusRequestEntityTooLarge, "line %d: more than %d responses in one batch; split the batch", line, maxBatch)
		}
		// JSON strings cannot hold a raw newline, so an object that is not
		// closed on its line is spread over several lines (or truncated).
		eol := bytes.IndexByte(body[next:], '\n')
		var w wireResponse
		err := dec.Decode(&w)
		if eol >= 0 && int(dec.InputOffset()) > next+eol {
			return nil, bad(line, ": the object does not end on its line; send one complete object per line")
		}
		if err != nil {
			return nil, bad(line, elementError(err))
		}
		r, msg := validate(&w, sc)
		if msg != "" {
			return nil, bad(line, msg)
		}
		out = append(out, r)
		lastLine = line
	}
	if len(out) == 0 {
		return nil, errorf(http.StatusBadRequest, "the batch is empty; send at least one response, one JSON object per line")
	}
	return out, nil
}

// skipSpace returns the length of the JSON whitespace at the start of b.
func skipSpace(b []byte) int {
	for i, c := range b {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return i
		}
	}
	return len(b)
}

// elementError turns a decoding error of one response into a message
// suffix: ".field: ..." when a field is at fault, ": ..." otherwise.
func elementError(err error) string {
	if typ := (*json.UnmarshalTypeError)(nil); errors.As(err, &typ) && typ.Field != "" {
		return "." + jsonMessage(err, "")
	}
	return ": " + jsonMessage(err, "; allowed fields are "+wireFields)
}

// validate checks one decoded response against the experiment. It returns
// a message suffix such as ".score: 7 is outside ..." so that the caller
// can prefix responses[i] or line n; "" means valid.
func validate(w *wireResponse, sc scale) (Response, string) {
	var r Response
	score, msg := parseScore(w.Score, sc)
	if msg != "" {
		return r, ".score: " + msg
	}
	r.Score = score
	switch {
	case w.Variant == "":
		return r, fmt.Sprintf(".variant is required; one of %s", strings.Join(sc.variants, ", "))
	case !slices.Contains(sc.variants, w.Variant):
		return r, fmt.Sprintf(".variant: %q is not a variant of the experiment; use one of %s", clip(w.Variant), strings.Join(sc.variants, ", "))
	}
	r.Variant = w.Variant
	seg, msg := checkSegment(w.Segment, sc)
	if msg != "" {
		return r, ".segment" + msg
	}
	r.Segment = seg
	if n := utf8.RuneCountInString(w.Respondent); n > maxFreeText {
		return r, fmt.Sprintf(".respondent: %d characters, at most %d; send an opaque id", n, maxFreeText)
	}
	if n := utf8.RuneCountInString(w.Channel); n > maxFreeText {
		return r, fmt.Sprintf(".channel: %d characters, at most %d", n, maxFreeText)
	}
	if w.At != "" {
		t, err := time.Parse(time.RFC3339Nano, w.At)
		if err != nil || len(w.At) > 64 {
			return r, fmt.Sprintf(".at: %q is not an RFC 3339 time such as 2026-11-23T10:00:00Z", clip(w.At))
		}
		r.At = t
	}
	epoch, msg := parseEpoch(w.Epoch, sc.epoch(seg))
	if msg != "" {
		return r, ".epoch" + msg
	}
	r.Epoch = epoch
	return r, ""
}

// parseEpoch accepts an absent epoch (0) or a whole number from 1 to one
// past the segment's current epoch as the collector last saw it (the
// controller may have started the next one a moment ago).
func parseEpoch(raw json.RawMessage, current int32) (int32, string) {
	s := string(bytes.TrimSpace(raw))
	if s == "" || s == "null" {
		return 0, ""
	}
	v, err := strconv.ParseInt(s, 10, 32)
	if err != nil || v < 1 || v > int64(current)+1 {
		return 0, fmt.Sprintf(": %s is not an epoch of the segment (1..%d); send the epoch the customer was served in (the x-rapport-epoch header or the assignment cookie), or omit it", clip(s), current)
	}
	return int32(v), ""
}

// parseScore accepts a JSON integer on the scale and nothing else: no
// strings, no fractions or exponents (4.5 and 4e0 alike), no null.
func parseScore(raw json.RawMessage, sc scale) (int, string) {
	hint := fmt.Sprintf("send a whole number on the %s scale %d..%d", sc.metric, sc.min, sc.max)
	s := string(bytes.TrimSpace(raw))
	switch {
	case s == "" || s == "null":
		return 0, "is required; " + hint
	case s[0] == '"':
		return 0, fmt.Sprintf("%s is a string; %s", clip(s), hint)
	case s[0] != '-' && (s[0] < '0' || s[0] > '9'):
		return 0, fmt.Sprintf("%s is not a number; %s", clip(s), hint)
	case strings.ContainsAny(s, ".eE"):
		return 0, fmt.Sprintf("%s is not a whole number; %s", clip(s), hint)
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < int64(sc.min) || v > int64(sc.max) {
		return 0, fmt.Sprintf("%s is outside the %s scale %d..%d", clip(s), sc.metric, sc.min, sc.max)
	}
	return int(v), ""
}

// checkSegment normalises the segment and returns a message suffix for the
// "segment" field when it is not acceptable.
func checkSegment(seg string, sc scale) (string, string) {
	if len(sc.segments) == 0 {
		if seg == "" || seg == cxv1.AllSegment {
			return cxv1.AllSegment, ""
		}
		return "", fmt.Sprintf(": %q is not a segment; the experiment has no segments, so omit segment or send %q", clip(seg), cxv1.AllSegment)
	}
	if seg == "" {
		return "", fmt.Sprintf(" is required; one of %s", strings.Join(sc.segments, ", "))
	}
	if !slices.Contains(sc.segments, seg) {
		return "", fmt.Sprintf(": %q is not a segment of the experiment; use one of %s", clip(seg), strings.Join(sc.segments, ", "))
	}
	return seg, ""
}

// jsonMessage rewrites encoding/json errors into messages naming the field
// (hint is appended to unknown-field messages).
func jsonMessage(err error, hint string) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("invalid JSON at byte %d: %v", syn.Offset, syn)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return fmt.Sprintf("expected %s, got a JSON %s", kindName(typ.Type), typ.Value)
		}
		return fmt.Sprintf("%s: expected %s, got a JSON %s", typ.Field, kindName(typ.Type), typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF): // EOF: a stream that stops mid-document
		return "the JSON ends early; check for a missing bracket or quote"
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return "unknown field " + clip(f) + hint
	}
	return strings.TrimPrefix(msg, "json: ")
}

// kindName names a Go type the way a JSON client thinks of it.
func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.String:
		return "a string"
	}
	return "a " + t.Kind().String()
}

// clip bounds client-supplied text echoed in messages and logs.
func clip(s string) string { return clipTo(s, 64) }

// clipTo cuts s to at most max bytes at a rune boundary, marking the cut.
func clipTo(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
