package feedback

import (
	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/types"
)

// reads is the part of a payload that a mapping's expressions can read: the
// members of an object named in fields, each with what is read below it. A
// nil *reads, or one with all set, reads everything below.
//
// Decoding only what can be read saves a webhook most of its allocations
// for payloads such as Typeform's, whose form definition and metadata no
// expression looks at; the members left out are still checked as JSON, so a
// body is refused or accepted exactly as by DecodeJSON.
type reads struct {
	all    bool
	fields map[string]*reads
}

// everything reads the whole payload.
var everything = &reads{all: true}

// whole reports whether r reads everything below it.
func (r *reads) whole() bool { return r == nil || r.all }

// member reports whether r reads an object's member of this name, and
// what it reads below it.
func (r *reads) member(name []byte) (*reads, bool) {
	if r.whole() {
		return everything, true
	}
	below, ok := r.fields[string(name)]
	return below, ok
}

// add marks path, and everything below it, as read.
func (r *reads) add(path []string) {
	for _, f := range path {
		if r.all {
			return
		}
		if r.fields == nil {
			r.fields = map[string]*reads{}
		}
		next := r.fields[f]
		if next == nil {
			next = &reads{}
			r.fields[f] = next
		}
		r = next
	}
	r.all, r.fields = true, nil
}

// addExpr adds what a checked expression reads of the variable body: the
// longest chains of field selections (body.a.b, body.?a, body['a'],
// has(body.a)) rooted at it. Anything else done with body or with a chain
// (passing it to a function, iterating over it, indexing it with a value
// that is not a constant string) reads everything below that point. A
// comprehension whose variable is called body would hide it: then the whole
// payload counts as read.
func (r *reads) addExpr(e celast.NavigableExpr) {
	if path, ok := bodyChain(e); ok {
		r.add(path)
		return
	}
	if e.Kind() == celast.ComprehensionKind {
		c := e.AsComprehension()
		if c.IterVar() == "body" || c.IterVar2() == "body" || c.AccuVar() == "body" {
			r.add(nil)
			return
		}
	}
	for _, child := range e.Children() {
		r.addExpr(child)
	}
}

// bodyChain returns the fields e selects from body, when e is a chain of
// selections rooted at body.
func bodyChain(e celast.Expr) ([]string, bool) {
	switch e.Kind() {
	case celast.IdentKind:
		return nil, e.AsIdent() == "body"
	case celast.SelectKind:
		s := e.AsSelect()
		path, ok := bodyChain(s.Operand())
		return append(path, s.FieldName()), ok
	case celast.CallKind:
		c := e.AsCall()
		switch c.FunctionName() {
		case operators.OptSelect, operators.Index, operators.OptIndex:
		default:
			return nil, false
		}
		if c.IsMemberFunction() || len(c.Args()) != 2 || c.Args()[1].Kind() != celast.LiteralKind {
			return nil, false
		}
		field, isString := c.Args()[1].AsLiteral().(types.String)
		if !isString {
			return nil, false
		}
		path, ok := bodyChain(c.Args()[0])
		return append(path, string(field)), ok
	}
	return nil, false
}

// namesIdent reports whether e names the identifier anywhere (also where a
// comprehension's variable of that name hides it: a safe over-estimate).
func namesIdent(e celast.NavigableExpr, name string) bool {
	if e.Kind() == celast.IdentKind && e.AsIdent() == name {
		return true
	}
	for _, child := range e.Children() {
		if namesIdent(child, name) {
			return true
		}
	}
	return false
}
