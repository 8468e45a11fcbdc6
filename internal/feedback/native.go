package feedback

import (
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
// webhook runs six of them.
type native func(v *vars) (ref.Val, bool)

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
	`true`:                         func(*vars) (ref.Val, bool) { return types.True, true },
	`body.id`:                      member("id"),
	`body.?assignment.orValue('')`: optional(nil, "assignment"),
	`body.?experiment.orValue('')`: optional(nil, "experiment"),
	`body.?variant.orValue('')`:    optional(nil, "variant"),
	`body.?segment.orValue('')`:    optional(nil, "segment"),
	`body.score`:                   member("score"),
	`body.?respondent.orValue('')`: optional(nil, "respondent"),
	`body.?at.orValue('')`:         optional(nil, "at"),
}

// walk follows path from v through JSON objects, each holding the next
// member: what CEL's `v.a.b` reads without an error.
func walk(v any, path []string) (any, bool) {
	for _, name := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[name]; !ok {
			return nil, false
		}
	}
	return v, true
}

// scalar is the CEL value of a decoded JSON scalar (DecodeJSON's types, as
// CEL's type adapter converts them). Null, objects and arrays are declined.
func scalar(v any) (ref.Val, bool) {
	switch t := v.(type) {
	case string:
		return types.String(t), true
	case int64:
		return types.Int(t), true
	case float64:
		return types.Double(t), true
	case bool:
		return types.Bool(t), true
	}
	return nil, false
}

// member is `body.a.b...`.
func member(path ...string) native {
	return func(v *vars) (ref.Val, bool) {
		x, ok := walk(v.body, path)
		if !ok {
			return nil, false
		}
		return scalar(x)
	}
}

// equals is `body.a... == 'lit'` on a string member.
func equals(lit string, path ...string) native {
	return func(v *vars) (ref.Val, bool) {
		x, _ := walk(v.body, path)
		s, ok := x.(string)
		if !ok {
			return nil, false
		}
		return types.Bool(s == lit), true
	}
}

// optional is body.p1.p2.?o1.?o2.orValue with the empty string: the
// members of path must exist; a missing optional member gives the empty
// string.
func optional(path []string, opt ...string) native {
	return func(v *vars) (ref.Val, bool) {
		x, ok := walk(v.body, path)
		if !ok {
			return nil, false
		}
		for _, name := range opt {
			m, ok := x.(map[string]any)
			if !ok {
				return nil, false
			}
			if x, ok = m[name]; !ok {
				return types.String(""), true
			}
		}
		return scalar(x)
	}
}

// mapMember is a conditional on type(body.p1.p2) == map: when it is a
// map, body.p1.p2.?key.orValue with the empty string, else the empty
// string.
func mapMember(path []string, key string) native {
	return func(v *vars) (ref.Val, bool) {
		x, ok := walk(v.body, path)
		if !ok {
			return nil, false
		}
		m, ok := x.(map[string]any)
		if !ok {
			return types.String(""), true
		}
		if x, ok = m[key]; !ok {
			return types.String(""), true
		}
		return scalar(x)
	}
}

// typeformScore is the number of the first opinion scale, rating or NPS
// answer. CEL's filter evaluates its predicate on every answer, so every
// answer must have a string field.type for CEL to give no error.
func typeformScore(v *vars) (ref.Val, bool) {
	x, _ := walk(v.body, []string{"form_response", "answers"})
	answers, ok := x.([]any)
	if !ok {
		return nil, false
	}
	var first any
	for _, a := range answers {
		t, _ := walk(a, []string{"field", "type"})
		s, ok := t.(string)
		if !ok {
			return nil, false
		}
		if first == nil && (s == "opinion_scale" || s == "rating" || s == "nps") {
			first = a
		}
	}
	n, ok := walk(first, []string{"number"})
	if !ok {
		return nil, false
	}
	return scalar(n)
}

// survicateAccept is `has(body.event) && has(body.event.questionAnswered)`.
func survicateAccept(v *vars) (ref.Val, bool) {
	body, ok := v.body.(map[string]any)
	if !ok {
		return nil, false
	}
	event, ok := body["event"]
	if !ok {
		return types.False, true
	}
	m, ok := event.(map[string]any)
	if !ok {
		return nil, false
	}
	_, has := m["questionAnswered"]
	return types.Bool(has), true
}

// survicateRespondent is the response's uuid, or else the respondent's id.
// CEL evaluates orValue's argument whether or not it is needed, so the
// respondent's id must exist either way.
func survicateRespondent(v *vars) (ref.Val, bool) {
	qa, ok := walk(v.body, []string{"event", "questionAnswered"})
	if !ok {
		return nil, false
	}
	id, ok := walk(qa, []string{"respondent", "id"})
	if !ok {
		return nil, false
	}
	if uuid, ok := walk(qa, []string{"responseUuid"}); ok {
		return scalar(uuid)
	}
	return scalar(id)
}
