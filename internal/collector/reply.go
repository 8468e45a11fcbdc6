package collector

import (
	"net/http"

	"github.com/valyala/fasthttp"
)

// reply is what a handler that serves both HTTP servers (the webhooks and
// the public endpoint) answers: err (a rejection, sent as {"error": ...})
// or body as JSON (nil: no body), with code and the headers named below.
// write sends it through net/http, writeFast through fasthttp; both send
// the same status, headers and body.
type reply struct {
	code int
	body any
	err  *Error
	// allow and retryAfter: the Allow and Retry-After headers.
	allow, retryAfter string
	// allowOrigin: Access-Control-Allow-Origin, with Vary: Origin.
	allowOrigin string
	// preflight: the methods of a CORS preflight's answer, with its
	// allowed headers and max age.
	preflight string
	// cacheControl: the Cache-Control header.
	cacheControl string
}

// headers lists the reply's headers in the order they are set.
func (rep *reply) headers(set func(k, v string)) {
	for _, h := range [...]struct{ k, v string }{
		{"Allow", rep.allow},
		{"Retry-After", rep.retryAfter},
		{"Access-Control-Allow-Origin", rep.allowOrigin},
		{"Access-Control-Allow-Methods", rep.preflight},
		{"Cache-Control", rep.cacheControl},
	} {
		if h.v != "" {
			set(h.k, h.v)
		}
	}
	if rep.allowOrigin != "" {
		set("Vary", "Origin")
	}
	if rep.preflight != "" {
		set("Access-Control-Allow-Headers", "Content-Type")
		set("Access-Control-Max-Age", preflightMaxAge)
	}
}

// write sends rep through net/http.
func (rep *reply) write(w http.ResponseWriter) {
	h := w.Header()
	rep.headers(h.Set)
	switch {
	case rep.err != nil:
		writeError(w, rep.err)
	case rep.body == nil:
		w.WriteHeader(rep.code)
	default:
		writeJSON(w, rep.code, rep.body)
	}
}

// writeFast sends rep through fasthttp, as write would through net/http
// and countRequests, which counts its status.
func (rep *reply) writeFast(req *fasthttp.RequestCtx) {
	h := &req.Response.Header
	rep.headers(h.Set)
	req.SetStatusCode(rep.code)
	var out []byte // as writeJSON would write it
	switch {
	case rep.err != nil:
		out = jsonBody(errorJSON(rep.err))
	case rep.body != nil:
		out = jsonBody(rep.body)
	}
	if out != nil {
		h.SetContentType(jsonContentType[0])
		h.SetCanonical(headerNoSniff, valueNoSniff)
		req.SetBody(out)
	}
	countRequest(rep.code)
}
