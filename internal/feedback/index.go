package feedback

import (
	"errors"
	"fmt"
	"math"
)

// index is a payload read without building its values: where each value
// that a mapping reads lies in the body, in the order of the body. The
// natives read their members from it; CEL gets the values built as maps
// only when an expression needs it (Payload.Value).
//
// Decoding a Typeform webhook into maps (most of it allocating the maps
// and their members) was the largest part of the webhook's own CPU after
// its signature; the natives read six members of it. Reading them from an
// index takes one allocation for the whole payload.
type index struct {
	body  []byte
	nodes []node
}

// node is one value of an index. A container's members (a name's node,
// then its value's) or elements follow it, up to next; a member that the
// mapping does not read is checked but has no node.
type node struct {
	// kind is the value's first byte ('{', '[', '"', 't', 'f', 'n') or,
	// for a number, 'i' (int64 in bits) or 'd' (float64 in bits).
	kind byte
	// plain marks a string whose bytes between the quotes are its value
	// (no escape, no byte to replace).
	plain bool
	// start and end are the value's bytes in the body: a string's
	// include its quotes.
	start, end int32
	// next is the index of the node after this value and all it holds.
	next int32
	// bits is a number's value.
	bits uint64
}

// maxIndexedBody bounds the bodies an index can hold (its offsets are
// int32); the collector reads at most a few MiB of a webhook.
const maxIndexedBody = math.MaxInt32

// indexReads checks that body is one JSON value (RFC 8259, nesting at most
// maxDepth; see DecodeJSON) and indexes the values r reads, appending to
// nodes. A member r does not read is checked as the rest (skip), so that
// the same bodies are refused, with the same errors, whatever r reads.
func indexReads(body []byte, r *reads, nodes []node) (index, error) {
	if len(body) > maxIndexedBody {
		return index{}, errors.New("the body is too large to index")
	}
	x := index{body: body, nodes: nodes[:0]}
	p := parser{b: body}
	p.space()
	if err := x.value(&p, 0, r); err != nil {
		return index{}, fmt.Errorf("the body is not JSON: %v", err)
	}
	return x, p.end()
}

// value indexes the value at p.i (no whitespace before it), and of an
// object only the members r reads.
func (x *index) value(p *parser, depth int, r *reads) error {
	if p.i >= len(p.b) {
		return p.unexpected("where a value was expected")
	}
	at := len(x.nodes)
	x.nodes = append(x.nodes, node{}) // set below, once what it holds is indexed
	var (
		n   = node{start: int32(p.i)}
		err error
	)
	switch p.b[p.i] {
	case '{':
		if depth >= maxDepth {
			return errNesting
		}
		n.kind, err = '{', x.object(p, depth, r)
	case '[':
		if depth >= maxDepth {
			return errNesting
		}
		n.kind, err = '[', x.array(p, depth)
	case '"':
		n.kind = '"'
		n.plain, err = p.stringSpan()
	default:
		n.kind, n.bits, err = p.scalar()
	}
	if err != nil {
		return err
	}
	n.end, n.next = int32(p.i), int32(len(x.nodes))
	x.nodes[at] = n
	return nil
}

// object indexes the members of the object at p.i that r reads.
func (x *index) object(p *parser, depth int, r *reads) error {
	p.i++ // {
	p.space()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return nil
	}
	for {
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			return p.unexpected("where an object's name was expected")
		}
		start := p.i
		k, err := p.name()
		if err != nil {
			return err
		}
		key := node{kind: '"', plain: aliases(k, p.b[start+1:p.i-1]), start: int32(start), end: int32(p.i), next: int32(len(x.nodes) + 1)}
		if err := p.colon(); err != nil {
			return err
		}
		if below, read := r.member(k); read {
			x.nodes = append(x.nodes, key)
			if err := x.value(p, depth+1, below); err != nil {
				return err
			}
		} else if err := p.skip(depth + 1); err != nil {
			return err
		}
		if more, err := p.next('}', "after an object's value"); !more {
			return err
		}
	}
}

// array indexes the array at p.i whole: no expression selects fields of a
// list.
func (x *index) array(p *parser, depth int) error {
	p.i++ // [
	p.space()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return nil
	}
	for {
		if err := x.value(p, depth+1, everything); err != nil {
			return err
		}
		if more, err := p.next(']', "after an array's element"); !more {
			return err
		}
	}
}

// scalar reads the number or literal at p.i (or refuses what is no value)
// as a node's kind and bits.
func (p *parser) scalar() (kind byte, bits uint64, err error) {
	switch c := p.b[p.i]; {
	case c == '-' || c >= '0' && c <= '9':
		num, err := p.num()
		if num.whole {
			return 'i', uint64(num.i), err
		}
		return 'd', math.Float64bits(num.f), err
	case c == 't':
		return c, 0, p.literal("true")
	case c == 'f':
		return c, 0, p.literal("false")
	case c == 'n':
		return c, 0, p.literal("null")
	}
	return 0, 0, p.unexpected("where a value was expected")
}

// aliases reports whether decoded is raw itself: name gave the body's own
// bytes, so the string has nothing to unescape or replace.
func aliases(decoded, raw []byte) bool {
	return len(decoded) == len(raw) && (len(raw) == 0 || &decoded[0] == &raw[0])
}

// stringSpan checks the string at p.i as name reads it, and reports
// whether its bytes are its value.
func (p *parser) stringSpan() (plain bool, err error) {
	start := p.i
	s, err := p.name()
	if err != nil {
		return false, err
	}
	return aliases(s, p.b[start+1:p.i-1]), nil
}

// root is the body's value; an index of a checked body has one.
const root = 0

// build makes the value of the node at as DecodeJSON gives it: objects
// map[string]any (a name twice: its last value), arrays []any, whole
// numbers int64, other numbers float64; an object holds only its indexed
// members.
func (x *index) build(at int) any {
	n := &x.nodes[at]
	switch n.kind {
	case '{':
		m := map[string]any{}
		for k := at + 1; k < int(n.next); k = int(x.nodes[k+1].next) {
			m[string(x.text(k))] = x.build(k + 1)
		}
		return m
	case '[':
		a := []any{}
		x.elements(at, func(el int) bool { a = append(a, x.build(el)); return true })
		return a
	case '"':
		return string(x.text(at))
	case 'i':
		return int64(n.bits)
	case 'd':
		return math.Float64frombits(n.bits)
	case 't':
		return true
	case 'f':
		return false
	}
	return nil // 'n'
}

// text is the value of a string node, as name gives it: the body's bytes,
// or, for a string with escapes, those decoded again.
func (x *index) text(at int) []byte {
	n := &x.nodes[at]
	if n.plain {
		return x.body[n.start+1 : n.end-1]
	}
	p := parser{b: x.body, i: int(n.start)}
	s, _ := p.name() // checked when indexed
	return s
}

// is reports whether the string node at is s.
func (x *index) is(at int, s string) bool {
	return string(x.text(at)) == s
}

// member is the value of obj's member called name (the last one, when a
// name appears twice, as decoding keeps it), if obj is an object that has
// it among its indexed members.
func (x *index) member(obj int, name string) (int, bool) {
	if x.nodes[obj].kind != '{' {
		return 0, false
	}
	found, ok := 0, false
	for k := obj + 1; k < int(x.nodes[obj].next); k = int(x.nodes[k+1].next) {
		if x.is(k, name) {
			found, ok = k+1, true
		}
	}
	return found, ok
}

// walk follows path from at through objects, each holding the next
// member: what CEL's `v.a.b` reads without an error.
func (x *index) walk(at int, path []string) (int, bool) {
	for _, name := range path {
		var ok bool
		if at, ok = x.member(at, name); !ok {
			return 0, false
		}
	}
	return at, true
}

// elements calls f with each element of the array at, in order, until f
// returns false; it reports false when at is not an array.
func (x *index) elements(at int, f func(el int) bool) bool {
	if x.nodes[at].kind != '[' {
		return false
	}
	for el := at + 1; el < int(x.nodes[at].next); el = int(x.nodes[el].next) {
		if !f(el) {
			break
		}
	}
	return true
}
