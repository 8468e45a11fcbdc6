package feedback

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/cel-go/cel"
	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/ext"
	"github.com/google/cel-go/interpreter"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// Field names of a mapping, as in spec.mapping.
const (
	FieldAccept     = "accept"
	FieldEventID    = "eventID"
	FieldAssignment = "assignment"
	FieldExperiment = "experiment"
	FieldVariant    = "variant"
	FieldSegment    = "segment"
	FieldScore      = "score"
	FieldRespondent = "respondent"
	FieldAt         = "at"
)

// deadline is the evalBudget of one call of Accept or Map, started when
// its first expression of spec.mapping runs (the defaults run without it).
type deadline struct {
	ctx  context.Context
	stop context.CancelFunc
}

func (d *deadline) context() context.Context {
	if d.ctx == nil {
		d.ctx, d.stop = context.WithTimeout(context.Background(), evalBudget)
	}
	return d.ctx
}

func (d *deadline) cancel() {
	if d.stop != nil {
		d.stop()
	}
}

// evalBudget bounds the time of the expressions of spec.mapping in one call
// of Accept, or of Map, on one payload. CEL's cost limit does not bound
// time: its tracker itself takes time that grows with the square of a list
// a comprehension runs over (an `all` over 40,000 items took 2 s at a cost
// of 120,003 of the 1,000,000 allowed), so a mapping written to be slow,
// signed with its own namespace's secret, could hold a core for minutes.
// The evaluation checks the deadline every interruptEvery iterations of a
// comprehension. The providers' defaults run without the deadline, as
// without the cost limit (see costLimit): the deadline's timer and checks
// would add about 3 µs to every webhook (BenchmarkWebhook: Typeform 8.7 →
// 11.4–13.6 µs, Delighted 5.1 → 8.1).
const (
	evalBudget     = 250 * time.Millisecond
	interruptEvery = 100
)

// costLimit bounds the cost of one evaluation of an expression of
// spec.mapping: those are written by the namespace's users and run on
// payloads from the internet. Their time is bounded by evalBudget.
//
// The providers' defaults run without it. They are Rapport's own, each at
// most one pass over the payload (one filter of Typeform's answers, one
// flatten of SurveyMonkey's pages), evaluated only after the payload's
// signature or token was checked, on a body of at most the collector's body
// limit: 18,720 Typeform answers in 1 MiB map in about 30 ms
// (TestDefaultMappingsOnTheLargestPayload), 49,925 minimal ones in 21–48 ms,
// and SurveyMonkey's score over a response of 349,498 empty answers in about
// 100 ms. CEL's cost tracking observes every step of an evaluation, with
// a stack that makes a comprehension's time grow with the square of its
// list: it took a third of a Typeform webhook's work before the commit
// (BenchmarkWebhook, 16 µs against 11), and 0.55 s on that largest payload.
const costLimit = 1_000_000

// Defaults are the mappings of each provider, written for the payloads
// each documents; spec.mapping overrides them field by field.
var Defaults = map[cxv1.FeedbackProvider]cxv1.FeedbackMapping{
	// One webhook per submitted typeform; partial responses
	// (form_response_partial) are acknowledged and not counted. The score is
	// the first opinion scale, rating or NPS answer; the assignment travels
	// in the hidden field "rapport".
	cxv1.ProviderTypeform: {
		Accept:     `body.event_type == 'form_response'`,
		EventID:    `body.event_id`,
		Assignment: `body.form_response.?hidden.?rapport.orValue('')`,
		Score:      `body.form_response.answers.filter(a, a.field.type in ['opinion_scale', 'rating', 'nps'])[0].number`,
		Respondent: `body.form_response.token`,
		At:         `body.form_response.submitted_at`,
	},
	// The webhook names the completed response; its answers come from the
	// API (response: GET .../responses/{id}/details?simple=true). The score
	// is the first answer that is a number; the assignment is the custom
	// variable "rapport" of the collector link.
	cxv1.ProviderSurveyMonkey: {
		Accept:     `body.event_type == 'response_completed'`,
		EventID:    `body.event_id`,
		Assignment: `type(response.custom_variables) == map ? response.custom_variables.?rapport.orValue('') : ''`,
		Score:      `int(response.pages.map(p, p.questions).flatten().map(q, q.answers).flatten().filter(a, has(a.simple_text) && a.simple_text.matches('^[0-9]{1,2}$'))[0].simple_text)`,
		Respondent: `body.resources.respondent_id`,
		At:         `body.event_datetime`,
	},
	// One webhook per answered question (questionAnswered); for an NPS
	// question choice.id is the score. The assignment is the respondent
	// attribute "rapport". With more than one question, set accept to pick
	// the rating question (e.g. body.event.questionAnswered.question.id == 4411).
	cxv1.ProviderSurvicate: {
		Accept:     `has(body.event) && has(body.event.questionAnswered)`,
		EventID:    `body.messageId`,
		Assignment: `type(body.event.questionAnswered.respondent.attributes) == map ? body.event.questionAnswered.respondent.attributes.?rapport.orValue('') : ''`,
		Score:      `body.event.questionAnswered.choice.id`,
		Respondent: `body.event.questionAnswered.?responseUuid.orValue(body.event.questionAnswered.respondent.id)`,
		At:         `body.event.questionAnswered.timestamp`,
	},
	// survey_response.created counts once per event id; the later
	// survey_response.updated (a comment, additional answers) is
	// acknowledged and never counted again. The assignment is the person
	// property "rapport".
	cxv1.ProviderDelighted: {
		Accept:     `body.event_type == 'survey_response.created'`,
		EventID:    `body.event_id`,
		Assignment: `type(body.event_data.person_properties) == map ? body.event_data.person_properties.?rapport.orValue('') : ''`,
		Score:      `body.event_data.score`,
		Respondent: `body.event_data.person.id`,
		At:         `body.event_data.created_at`,
	},
	// Rapport's own shape, for senders that can template their payload:
	// {"id": ..., "assignment": ..., "score": ...}, or experiment, variant
	// and segment instead of assignment. Map any other shape with spec.mapping.
	cxv1.ProviderGeneric: {
		Accept:     `true`,
		EventID:    `body.id`,
		Assignment: `body.?assignment.orValue('')`,
		Experiment: `body.?experiment.orValue('')`,
		Variant:    `body.?variant.orValue('')`,
		Segment:    `body.?segment.orValue('')`,
		Score:      `body.score`,
		Respondent: `body.?respondent.orValue('')`,
		At:         `body.?at.orValue('')`,
	},
}

// The members of a SurveyMonkey webhook that name the response whose
// answers the collector fetches (SurveyMonkeyResponse).
var (
	surveyMonkeySurveyID   = []string{"resources", "survey_id"}
	surveyMonkeyResponseID = []string{"object_id"}
)

// collectorReads are the members of a provider's payload that the
// collector reads itself, whatever the mapping: a Mapping's Decode keeps
// them.
var collectorReads = map[cxv1.FeedbackProvider][][]string{
	cxv1.ProviderSurveyMonkey: {surveyMonkeySurveyID, surveyMonkeyResponseID},
}

// SurveyMonkeyResponse returns the survey and the response a SurveyMonkey
// webhook's payload names; "" for one it lacks.
func SurveyMonkeyResponse(p *Payload) (survey, response string) {
	return p.stringAt(surveyMonkeySurveyID), p.stringAt(surveyMonkeyResponseID)
}

// stringAt is the string at path in the payload, or "".
func (p *Payload) stringAt(path []string) string {
	at, ok := p.doc.walk(root, path)
	if !ok || p.doc.nodes[at].kind != '"' {
		return ""
	}
	return string(p.doc.text(at))
}

var (
	envOnce sync.Once
	env     *cel.Env
	envErr  error
)

func celEnv() (*cel.Env, error) {
	envOnce.Do(func() {
		env, envErr = cel.NewEnv(
			cel.Variable("body", cel.DynType),
			cel.Variable("headers", cel.MapType(cel.StringType, cel.StringType)),
			cel.Variable("response", cel.DynType),
			cel.OptionalTypes(),
			ext.Strings(),
			ext.Lists(),
		)
	})
	return env, envErr
}

// expr is one compiled field.
type expr struct {
	field, source string
	fromDefault   bool
	prg           cel.Program
	// native evaluates the expression without CEL where it can (natives).
	native native
}

// Mapping is a source's compiled mapping.
type Mapping struct {
	provider cxv1.FeedbackProvider
	fields   map[string]*expr
	reads    *reads // what the expressions can read of body
	headers  bool   // whether an expression names the variable headers
}

// ReadsHeaders reports whether an expression of m can read the request's
// headers: when none can, the caller may leave Input.Headers nil.
func (m *Mapping) ReadsHeaders() bool { return m.headers }

// Decode checks a payload as DecodeJSON does (the same bodies are
// refused, with the same errors) and indexes what m's expressions can read
// of it. The natives read the index; the payload is decoded for CEL only
// when an expression needs it, leaving out the members of objects that
// none of them can read: the expressions see the same values.
func (m *Mapping) Decode(body []byte) (*Payload, error) {
	return newPayload(body, m.reads)
}

// Payload is a webhook's body, checked as JSON, for a mapping's
// expressions. It belongs to one request: Value decodes it once, without a
// lock.
type Payload struct {
	doc index
	// value is the body decoded for CEL, once decoded is set.
	value   any
	decoded bool
	// backing is where doc's nodes go: nodes at first, or the larger
	// array a larger payload needed, kept for reuse up to maxPooledNodes.
	backing []node
	// nodes backs doc for payloads the size of the providers' events, so
	// that a Payload is one allocation.
	nodes [48]node
}

// maxPooledNodes bounds the nodes a released Payload keeps (24 KiB).
const maxPooledNodes = 1024

// payloads are Payloads for reuse (Release): a Payload is about 1.3 KB,
// and allocating and clearing one for every webhook took about 2% of the
// manager's CPU under webhooks (a profile of 2026-12-02, 03:57).
var payloads = sync.Pool{New: func() any { return new(Payload) }}

func newPayload(body []byte, r *reads) (*Payload, error) {
	p := payloads.Get().(*Payload)
	if p.backing == nil {
		p.backing = p.nodes[:0]
	}
	doc, err := indexReads(body, r, p.backing)
	if err != nil {
		p.Release()
		return nil, err
	}
	if cap(doc.nodes) <= maxPooledNodes {
		p.backing = doc.nodes[:0]
	}
	p.doc = doc
	return p, nil
}

// Release hands p back for a later Decode. The caller must not use p
// afterwards; what the mapping gave (an Event, an error) holds no part of
// it.
func (p *Payload) Release() {
	if p == nil {
		return
	}
	p.doc, p.value, p.decoded = index{}, nil, false
	payloads.Put(p)
}

// Value is the payload decoded as DecodeJSON decodes it, without the
// members of objects that the mapping cannot read. A nil Payload is nil.
func (p *Payload) Value() any {
	if p == nil {
		return nil
	}
	if !p.decoded {
		// Built from the index the mapping's Go expressions read: the body
		// is not read again.
		p.value = p.doc.build(root)
		p.decoded = true
	}
	return p.value
}

// fieldsOf lists a mapping's fields in evaluation order.
func fieldsOf(m cxv1.FeedbackMapping) [][2]string {
	return [][2]string{
		{FieldAccept, m.Accept}, {FieldEventID, m.EventID}, {FieldAssignment, m.Assignment},
		{FieldExperiment, m.Experiment}, {FieldVariant, m.Variant}, {FieldSegment, m.Segment},
		{FieldScore, m.Score}, {FieldRespondent, m.Respondent}, {FieldAt, m.At},
	}
}

// Compile compiles the provider's default mapping overridden by m (which
// may be nil). The error names the field of spec.mapping and the problem.
func Compile(provider cxv1.FeedbackProvider, m *cxv1.FeedbackMapping) (*Mapping, error) {
	return compile(provider, m, true)
}

// compile is Compile; withNatives false leaves every expression to CEL
// (the tests compare the two).
func compile(provider cxv1.FeedbackProvider, m *cxv1.FeedbackMapping, withNatives bool) (*Mapping, error) {
	def, ok := Defaults[provider]
	if !ok {
		return nil, fmt.Errorf("spec.provider %q is not supported; use Typeform, SurveyMonkey, Survicate, Delighted or Generic", provider)
	}
	e, err := celEnv()
	if err != nil {
		return nil, err
	}
	var over cxv1.FeedbackMapping
	if m != nil {
		over = *m
	}
	out := &Mapping{provider: provider, fields: map[string]*expr{}, reads: &reads{}}
	defs := fieldsOf(def)
	for i, f := range fieldsOf(over) {
		src, fromDefault := f[1], false
		if src == "" {
			src, fromDefault = defs[i][1], true
		}
		if src == "" {
			continue
		}
		ast, iss := e.Compile(src)
		if iss.Err() != nil {
			return nil, fmt.Errorf("spec.mapping.%s does not compile: %v", f[0], iss.Err())
		}
		if t := ast.OutputType(); !outputFits(f[0], t) {
			return nil, fmt.Errorf("spec.mapping.%s must give %s, but gives %s", f[0], wantType(f[0]), t)
		}
		opts := []cel.ProgramOption{cel.EvalOptions(cel.OptOptimize)}
		if !fromDefault {
			opts = append(opts, cel.CostLimit(costLimit), cel.InterruptCheckFrequency(interruptEvery))
		}
		prg, err := e.Program(ast, opts...)
		if err != nil {
			return nil, fmt.Errorf("spec.mapping.%s: %v", f[0], err)
		}
		x := &expr{field: f[0], source: src, fromDefault: fromDefault, prg: prg}
		if withNatives {
			x.native = natives[src]
		}
		out.fields[f[0]] = x
		nav := celast.NavigateAST(ast.NativeRep())
		out.reads.addExpr(nav)
		out.headers = out.headers || namesIdent(nav, "headers")
	}
	for _, path := range collectorReads[provider] {
		out.reads.add(path)
	}
	for _, required := range []string{FieldAccept, FieldEventID, FieldScore} {
		if out.fields[required] == nil {
			return nil, fmt.Errorf("spec.mapping.%s is required for provider %s", required, provider)
		}
	}
	return out, nil
}

func wantType(field string) string {
	switch field {
	case FieldAccept:
		return "a bool"
	case FieldScore:
		return "an int"
	case FieldAt:
		return "a timestamp, an RFC 3339 string or Unix seconds"
	}
	return "a string"
}

// outputFits rejects expressions whose type is known at compile time and wrong.
func outputFits(field string, t *cel.Type) bool {
	if t == nil || t.IsExactType(cel.DynType) || t.Kind() == types.OptionalType.Kind() {
		return true
	}
	switch field {
	case FieldAccept:
		return t.IsExactType(cel.BoolType)
	case FieldScore:
		return t.IsExactType(cel.IntType) || t.IsExactType(cel.UintType) || t.IsExactType(cel.DoubleType)
	case FieldAt:
		return t.IsExactType(cel.TimestampType) || t.IsExactType(cel.StringType) || t.IsExactType(cel.IntType)
	}
	return t.IsExactType(cel.StringType) || t.IsExactType(cel.IntType) || t.IsExactType(cel.NullType)
}

// Input is what the expressions see.
type Input struct {
	// Payload is the webhook's body, as Mapping.Decode read it.
	Payload *Payload
	// Headers are the request's headers, lower-case names, first value.
	Headers map[string]string
	// Response is what the collector fetched for the event (SurveyMonkey), or nil.
	Response any
}

// Event is the response a mapping made of a webhook.
type Event struct {
	EventID    string
	Assignment string
	Experiment string
	Variant    string
	Segment    string
	Score      int64
	Respondent string
	// At is zero when the mapping gives none.
	At time.Time
}

// MappingError is a mapping that failed on a payload: the collector
// answers 422 with the message, which names the field.
type MappingError struct {
	Field   string
	Message string
}

func (e *MappingError) Error() string { return e.Message }

func (m *Mapping) fail(x *expr, format string, args ...any) error {
	origin := "spec.mapping." + x.field
	if x.fromDefault {
		origin = fmt.Sprintf("the %s default of spec.mapping.%s (%s)", m.provider, x.field, x.source)
	}
	return &MappingError{Field: x.field, Message: origin + ": " + fmt.Sprintf(format, args...) +
		fmt.Sprintf("; set spec.mapping.%s to read this payload", x.field)}
}

// vars holds an event's variables for the expressions of one call (Accept,
// or Map with all its fields): one activation per call, not a map per
// expression. Map gets its own because the caller may add the response
// after Accept (SurveyMonkey).
type vars struct {
	payload  *Payload
	response any
	headers  map[string]string
}

func (v *vars) ResolveName(name string) (any, bool) {
	switch name {
	case "body":
		return v.payload.Value(), true
	case "headers":
		return v.headers, true
	case "response":
		return v.response, true
	}
	return nil, false
}

func (v *vars) Parent() interpreter.Activation { return nil }

// noHeaders is the headers of an Input without them (expressions cannot
// change a map).
var noHeaders = map[string]string{}

func (in Input) vars() *vars {
	v := &vars{payload: in.Payload, response: in.Response, headers: in.Headers}
	if v.response == nil {
		v.response = types.NullValue
	}
	if v.headers == nil {
		v.headers = noHeaders
	}
	return v
}

func (m *Mapping) eval(d *deadline, x *expr, in *vars) (ref.Val, error) {
	var (
		v   ref.Val
		err error
	)
	if x.native != nil && in.payload != nil {
		if v, ok := x.native(&in.payload.doc); ok {
			return v, nil
		}
	}
	if x.fromDefault {
		v, _, err = x.prg.Eval(in)
	} else {
		v, _, err = x.prg.ContextEval(d.context(), in)
	}
	if err != nil {
		if d.ctx != nil && d.ctx.Err() != nil {
			return nil, m.fail(x, "the mapping took longer than %s on this payload, and was stopped", evalBudget)
		}
		return nil, m.fail(x, "%v", err)
	}
	if o, ok := v.(*types.Optional); ok {
		if !o.HasValue() {
			return types.NullValue, nil
		}
		v = o.GetValue()
	}
	return v, nil
}

// Accept evaluates accept: false means acknowledge the event without
// counting it.
func (m *Mapping) Accept(in Input) (bool, error) {
	var d deadline
	defer d.cancel()
	x := m.fields[FieldAccept]
	v, err := m.eval(&d, x, in.vars())
	if err != nil {
		return false, err
	}
	b, ok := v.(types.Bool)
	if !ok {
		return false, m.fail(x, "gave %s, not a bool", describe(v))
	}
	return bool(b), nil
}

// Map evaluates the other fields into an Event. experiment, variant and
// segment are evaluated only when assignment is empty.
func (m *Mapping) Map(input Input) (Event, error) {
	var d deadline
	defer d.cancel()
	var ev Event
	in := input.vars()
	str := func(field string, dst *string) error {
		x := m.fields[field]
		if x == nil {
			return nil
		}
		v, err := m.eval(&d, x, in)
		if err != nil {
			return err
		}
		s, ok := asString(v)
		if !ok {
			return m.fail(x, "gave %s, not a string", describe(v))
		}
		*dst = s
		return nil
	}
	if err := str(FieldEventID, &ev.EventID); err != nil {
		return ev, err
	}
	if ev.EventID == "" {
		return ev, m.fail(m.fields[FieldEventID], "gave an empty event id; every event needs one, so that a retried event is not counted twice")
	}
	if err := str(FieldAssignment, &ev.Assignment); err != nil {
		return ev, err
	}
	if ev.Assignment == "" {
		for _, f := range []struct {
			field string
			dst   *string
		}{{FieldExperiment, &ev.Experiment}, {FieldVariant, &ev.Variant}, {FieldSegment, &ev.Segment}} {
			if err := str(f.field, f.dst); err != nil {
				return ev, err
			}
		}
	}
	x := m.fields[FieldScore]
	v, err := m.eval(&d, x, in)
	if err != nil {
		return ev, err
	}
	score, ok := asInt(v)
	if !ok {
		return ev, m.fail(x, "gave %s, not a whole number", describe(v))
	}
	ev.Score = score
	if err := str(FieldRespondent, &ev.Respondent); err != nil {
		return ev, err
	}
	if x := m.fields[FieldAt]; x != nil {
		v, err := m.eval(&d, x, in)
		if err != nil {
			return ev, err
		}
		at, ok := asTime(v)
		if !ok {
			return ev, m.fail(x, "gave %s, not a timestamp, an RFC 3339 string or Unix seconds", describe(v))
		}
		ev.At = at
	}
	return ev, nil
}

// describe names a value for messages without echoing long content.
func describe(v ref.Val) string {
	s := fmt.Sprint(v.Value())
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return fmt.Sprintf("%s %q", strings.ToLower(v.Type().TypeName()), s)
}

func asString(v ref.Val) (string, bool) {
	switch t := v.(type) {
	case types.String:
		return string(t), true
	case types.Int:
		return strconv.FormatInt(int64(t), 10), true
	case types.Uint:
		return strconv.FormatUint(uint64(t), 10), true
	case types.Null:
		return "", true
	}
	return "", false
}

func asInt(v ref.Val) (int64, bool) {
	switch t := v.(type) {
	case types.Int:
		return int64(t), true
	case types.Uint:
		if uint64(t) > math.MaxInt64 {
			return 0, false
		}
		return int64(t), true
	case types.Double:
		f := float64(t)
		if f != math.Trunc(f) || math.Abs(f) > 1<<53 {
			return 0, false
		}
		return int64(f), true
	}
	return 0, false
}

func asTime(v ref.Val) (time.Time, bool) {
	switch t := v.(type) {
	case types.Timestamp:
		return t.Time, true
	case types.String:
		if t == "" {
			return time.Time{}, true
		}
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999Z07:00"} {
			if at, err := time.Parse(layout, string(t)); err == nil {
				return at, true
			}
		}
		return time.Time{}, false
	case types.Int:
		return time.Unix(int64(t), 0).UTC(), true
	case types.Double:
		return time.Unix(int64(t), 0).UTC(), true
	case types.Null:
		return time.Time{}, true
	}
	return time.Time{}, false
}
