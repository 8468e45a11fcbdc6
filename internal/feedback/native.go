package feedback

import (
	"math"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
)

// native is a Go evaluation of one expression of the providers' defaults.
// It gives CEL's value on the payloads it recognises and declines (ok
// false) every other one, which CEL then evaluates: an error, a missing
// member or an unusual shape keeps CEL's result and message. Declining is
// always safe; a native may only answer where CEL gives the same value
// without an error (FuzzNativesMatchCEL and TestNativesMatchCEL).
//
// CEL's interpreter resolves every member through its attribute and
// type-adapter machinery: the default mappings took about a third of a
// Typeform webhook's work before the commit (BenchmarkWebhook), and each
// webhook runs six of them. The natives read the payload's index, not its
// decoded value: a webhook whose natives all answer never builds the
// payload's maps.
type native func(x *index) (ref.Val, bool)

// natives are keyed by the expression's source text, so a native applies
// only to the very expression it was written for (an edited default, or
// another expression, is evaluated by CEL), and also to an expression of
// spec.mapping that repeats a default word for word.
var natives = map[string]native{
	// Typeform
	`body.event_type == 'form_response'`:              equals("form_response", "event_type"),
	`body.event_id`:                                   member("event_id"),
	`body.form_response.?hidden.?rapport.orValue('')`: optional([]string{"form_response"}, "hidden", "rapport"),
	`body.form_response.token`:                        member("form_response", "token"),
	`body.form_response.submitted_at`:                 member("form_response", "submitted_at"),

	`body.form_response.answers.filter(a, a.field.type in ['opinion_scale', 'rating', 'nps'])[0].number`: typeformScore,

	// SurveyMonkey (its assignment and score read the fetched response:
	// CEL evaluates them)
	`body.event_type == 'response_completed'`: equals("response_completed", "event_type"),
	`body.resources.respondent_id`:            member("resources", "respondent_id"),
	`body.event_datetime`:                     member("event_datetime"),

	// Survicate
	`has(body.event) && has(body.event.questionAnswered)`: survicateAccept,
	`body.messageId`:                        member("messageId"),
	`body.event.questionAnswered.choice.id`: member("event", "questionAnswered", "choice", "id"),
	`body.event.questionAnswered.timestamp`: member("event", "questionAnswered", "timestamp"),

	`type(body.event.questionAnswered.respondent.attributes) == map ? body.event.questionAnswered.respondent.attributes.?rapport.orValue('') : ''`: mapMember([]string{"event", "questionAnswered", "respondent", "attributes"}, "rapport"),

	`body.event.questionAnswered.?responseUuid.orValue(body.event.questionAnswered.respondent.id)`: survicateRespondent,

	// Delighted
	`body.event_type == 'survey_response.created'`: equals("survey_response.created", "event_type"),
	`body.event_data.score`:                        member("event_data", "score"),
	`body.event_data.person.id`:                    member("event_data", "person", "id"),
	`body.event_data.created_at`:                   member("event_data", "created_at"),

	`type(body.event_data.person_properties) == map ? body.event_data.person_properties.?rapport.orValue('') : ''`: mapMember([]string{"event_data", "person_properties"}, "rapport"),

	// Generic
	`true`:                         func(*index) (ref.Val, bool) { return types.True, true },
	`body.id`:                      member("id"),
	`body.?assignment.orValue('')`: optional(nil, "assignment"),
	`body.?experiment.orValue('')`: optional(nil, "experiment"),
	`body.?variant.orValue('')`:    optional(nil, "variant"),
	`body.?segment.orValue('')`:    optional(nil, "segment"),
	`body.score`:                   member("score"),
	`body.?respondent.orValue('')`: optional(nil, "respondent"),
	`body.?at.orValue('')`:         optional(nil, "at"),
}

// scalar is the CEL value of an indexed JSON scalar (DecodeJSON's types,
// as CEL's type adapter converts them). Null, objects and arrays are
// declined.
func (x *index) scalar(at int) (ref.Val, bool) {
	n := &x.nodes[at]
	switch n.kind {
	case '"':
		return types.String(x.text(at)), true
	case 'i':
		return types.Int(int64(n.bits)), true
	case 'd':
		return types.Double(math.Float64frombits(n.bits)), true
	case 't':
		return types.True, true
	case 'f':
		return types.False, true
	}
	return nil, false
}

// member is `body.a.b...`.
func member(path ...string) native {
	return func(x *index) (ref.Val, bool) {
		at, ok := x.walk(root, path)
		if !ok {
			return nil, false
		}
		return x.scalar(at)
	}
}

// equals is `body.a... == 'lit'` on a string member.
func equals(lit string, path ...string) native {
	return func(x *index) (ref.Val, bool) {
		at, ok := x.walk(root, path)
		if !ok || x.nodes[at].kind != '"' {
			return nil, false
		}
		return types.Bool(x.is(at, lit)), true
	}
}

// optional is body.p1.p2.?o1.?o2.orValue with the empty string: the
// members of path must exist; a missing optional member gives the empty
// string.
func optional(path []string, opt ...string) native {
	return func(x *index) (ref.Val, bool) {
		at, ok := x.walk(root, path)
		if !ok {
			return nil, false
		}
		for _, name := range opt {
			if x.nodes[at].kind != '{' {
				return nil, false
			}
			if at, ok = x.member(at, name); !ok {
				return types.String(""), true
			}
		}
		return x.scalar(at)
	}
}

// mapMember is a conditional on type(body.p1.p2) == map: when it is a
// map, body.p1.p2.?key.orValue with the empty string, else the empty
// string.
func mapMember(path []string, key string) native {
	return func(x *index) (ref.Val, bool) {
		at, ok := x.walk(root, path)
		if !ok {
			return nil, false
		}
		if x.nodes[at].kind != '{' {
			return types.String(""), true
		}
		if at, ok = x.member(at, key); !ok {
			return types.String(""), true
		}
		return x.scalar(at)
	}
}

var (
	typeformAnswers = []string{"form_response", "answers"}
	fieldType       = []string{"field", "type"}
	number          = []string{"number"}
)

// typeformScore is the number of the first opinion scale, rating or NPS
// answer. CEL's filter evaluates its predicate on every answer, so every
// answer must have a string field.type for CEL to give no error.
func typeformScore(x *index) (ref.Val, bool) {
	answers, ok := x.walk(root, typeformAnswers)
	if !ok {
		return nil, false
	}
	first, typed := -1, true
	if !x.elements(answers, func(a int) bool {
		t, ok := x.walk(a, fieldType)
		if typed = ok && x.nodes[t].kind == '"'; !typed {
			return false
		}
		if first < 0 && (x.is(t, "opinion_scale") || x.is(t, "rating") || x.is(t, "nps")) {
			first = a
		}
		return true
	}) || !typed || first < 0 {
		return nil, false
	}
	n, ok := x.walk(first, number)
	if !ok {
		return nil, false
	}
	return x.scalar(n)
}

// survicateAccept is `has(body.event) && has(body.event.questionAnswered)`.
func survicateAccept(x *index) (ref.Val, bool) {
	if x.nodes[root].kind != '{' {
		return nil, false
	}
	event, ok := x.member(root, "event")
	if !ok {
		return types.False, true
	}
	if x.nodes[event].kind != '{' {
		return nil, false
	}
	_, has := x.member(event, "questionAnswered")
	return types.Bool(has), true
}

var (
	survicateAnswer = []string{"event", "questionAnswered"}
	respondentID    = []string{"respondent", "id"}
	responseUUID    = []string{"responseUuid"}
)

// survicateRespondent is the response's uuid, or else the respondent's id.
// CEL evaluates orValue's argument whether or not it is needed, so the
// respondent's id must exist either way.
func survicateRespondent(x *index) (ref.Val, bool) {
	qa, ok := x.walk(root, survicateAnswer)
	if !ok {
		return nil, false
	}
	id, ok := x.walk(qa, respondentID)
	if !ok {
		return nil, false
	}
	if uuid, ok := x.walk(qa, responseUUID); ok {
		return x.scalar(uuid)
	}
	return x.scalar(id)
}
