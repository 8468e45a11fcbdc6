package collector

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// surveyBudget is the survey intercept's size budget, gzipped.
const surveyBudget = 10 * 1024

// TestSurveyScriptBudget: the survey intercept stays under 10 kB gzipped,
// as served.
func TestSurveyScriptBudget(t *testing.T) {
	a, err := newSurveyAsset()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("survey.js: %d bytes, %d bytes gzipped (budget %d)", len(a.plain), len(a.gzipped), surveyBudget)
	if len(a.gzipped) >= surveyBudget {
		t.Fatalf("survey.js is %d bytes gzipped, over the budget of %d", len(a.gzipped), surveyBudget)
	}
	zr, err := gzip.NewReader(bytes.NewReader(a.gzipped))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(plain, surveyJS) {
		t.Fatalf("the gzipped script does not decompress to the script: %v", err)
	}
}

// TestSurveyScriptMakesNoOtherRequests: the script names no URL but the
// collector's own API (built from its src), so it makes no third-party
// request; the browser tests check the requests it really makes.
func TestSurveyScriptMakesNoOtherRequests(t *testing.T) {
	src := string(surveyJS)
	for _, m := range regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`).FindAllString(src, -1) {
		if m != "https://feedback.example.com" { // the usage example in the header comment
			t.Errorf("survey.js names %q", m)
		}
	}
	for _, banned := range []string{"XMLHttpRequest", "sendBeacon", "importScripts", "eval(", "new Function", "innerHTML", "localStorage"} {
		if strings.Contains(src, banned) {
			t.Errorf("survey.js uses %s", banned)
		}
	}
}

func TestSurveyScriptServing(t *testing.T) {
	a, err := newSurveyAsset()
	if err != nil {
		t.Fatal(err)
	}
	get := func(h map[string]string) *http.Response {
		r := httptest.NewRequest(http.MethodGet, "/v1/survey.js", nil)
		for k, v := range h {
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		a.serve(w, r)
		return w.Result()
	}
	res := get(map[string]string{"Accept-Encoding": "br, gzip;q=0.8"})
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Encoding") != "gzip" ||
		res.Header.Get("Content-Type") != "text/javascript; charset=utf-8" || res.Header.Get("ETag") == "" {
		t.Fatalf("GET with gzip: %d %v", res.StatusCode, res.Header)
	}
	if res = get(nil); res.Header.Get("Content-Encoding") != "" {
		t.Fatalf("GET without Accept-Encoding was encoded: %v", res.Header)
	}
	if body, _ := io.ReadAll(res.Body); !bytes.Equal(body, surveyJS) {
		t.Fatal("GET without Accept-Encoding did not serve the script")
	}
	if res = get(map[string]string{"Accept-Encoding": "gzip;q=0"}); res.Header.Get("Content-Encoding") != "" {
		t.Fatal("gzip;q=0 was served gzipped")
	}
	if res = get(map[string]string{"If-None-Match": a.etag}); res.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match: %d, want 304", res.StatusCode)
	}
}

func TestClientKey(t *testing.T) {
	s := &Server{}
	req := func(remote string, hdr ...string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = remote
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Add(hdr[i], hdr[i+1])
		}
		return r
	}
	key := func(r *http.Request) tokenDigest { return s.clientKey(r.RemoteAddr, lastValue(r.Header)) }
	if key(req("10.0.0.1:1000")) != key(req("10.0.0.1:2000")) {
		t.Error("two ports of one address are two clients")
	}
	if key(req("10.0.0.1:1000")) == key(req("10.0.0.2:1000")) {
		t.Error("two addresses are one client")
	}
	if key(req("[2001:db8:1:2:a::1]:1")) != key(req("[2001:db8:1:2:b::9]:1")) {
		t.Error("two addresses of one IPv6 /64 are two clients")
	}
	// The header counts only when configured, and then its right-most address.
	if key(req("10.0.0.1:1", "X-Forwarded-For", "1.1.1.1")) != key(req("10.0.0.1:1")) {
		t.Error("an unconfigured X-Forwarded-For was trusted")
	}
	s.opts.ClientIPHeader = "X-Forwarded-For"
	if key(req("10.0.0.1:1", "X-Forwarded-For", "9.9.9.9, 1.1.1.1")) != key(req("1.1.1.1:5")) {
		t.Error("the right-most forwarded address was not used")
	}
	if key(req("10.0.0.1:1", "X-Forwarded-For", "garbage")) != key(req("10.0.0.1:2")) {
		t.Error("an unparsable forwarded address was used")
	}
	if key(req("10.0.0.1:1", "X-Forwarded-For", "9.9.9.9", "X-Forwarded-For", "8.8.8.8, 1.1.1.1")) != key(req("1.1.1.1:5")) {
		t.Error("the right-most address of the last X-Forwarded-For line was not used")
	}
}
