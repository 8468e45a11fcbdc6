package collector

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"net/http"
	"strings"
)

// surveyJS is the survey intercept, served at GET /v1/survey.js: a
// dependency-free script a page includes with a <script> tag (see
// docs/measurement.md, "Add the survey intercept to a page").
//
//go:embed assets/survey.js
var surveyJS []byte

// SurveyScript returns the survey intercept's source (for tests and tools).
func SurveyScript() []byte { return surveyJS }

// surveyAsset is the script with its gzipped form and ETag, computed once.
type surveyAsset struct {
	plain, gzipped []byte
	etag           string
}

func newSurveyAsset() (*surveyAsset, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(surveyJS); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(surveyJS)
	return &surveyAsset{plain: surveyJS, gzipped: buf.Bytes(), etag: `"` + hex.EncodeToString(sum[:8]) + `"`}, nil
}

// serve answers GET (and HEAD) /v1/survey.js: cacheable for an hour,
// revalidated by ETag, gzipped when the client accepts it, and loadable
// from any page (it is a public script; answers are what origins are
// checked for).
func (a *surveyAsset) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, errorf(http.StatusMethodNotAllowed, "method %s is not allowed; GET the script", r.Method))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/javascript; charset=utf-8")
	h.Set("Cache-Control", "public, max-age=3600")
	h.Set("ETag", a.etag)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cross-Origin-Resource-Policy", "cross-origin")
	h.Add("Vary", "Accept-Encoding")
	if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, a.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := a.plain
	if acceptsGzip(r.Header.Get("Accept-Encoding")) {
		h.Set("Content-Encoding", "gzip")
		body = a.gzipped
	}
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(body)
}

func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		name, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(name), "gzip") && strings.ReplaceAll(strings.TrimSpace(q), " ", "") != "q=0" {
			return true
		}
	}
	return false
}
