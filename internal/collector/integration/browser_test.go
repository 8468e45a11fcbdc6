package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/assignment"
	"github.com/rapport-dev/rapport/internal/collector"
	"github.com/rapport-dev/rapport/internal/routing/gatewayapi"
	"github.com/rapport-dev/rapport/internal/routing/traffic"
	"github.com/rapport-dev/rapport/test/utils"
)

// gatewayHeaders are the response headers a Gateway API implementation
// adds for a customer of segment served by variant: the child route is
// rendered by Rapport's own renderer (with the signed assignment cookie)
// and the chosen backendRef's ResponseHeaderModifier is applied, as a
// gateway does.
func gatewayHeaders(exp *cxv1.CXExperiment, key []byte, segment, variant string) http.Header {
	GinkgoHelper()
	parent := &gwv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Name: "checkout", Namespace: exp.Namespace},
		Spec: gwv1.HTTPRouteSpec{Rules: []gwv1.HTTPRouteRule{{BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{
			BackendObjectReference: gwv1.BackendObjectReference{Name: "checkout-v1", Port: ptr(gwv1.PortNumber(8080))}}}}}}},
	}
	plan := traffic.Plan{
		Segments: []traffic.SegmentRoute{{Segment: segment, Match: &cxv1.SegmentMatch{Headers: []cxv1.HeaderMatch{{Name: "x-tier", Value: segment}}},
			Backends: []traffic.Backend{
				{Variant: "control", Control: true, Service: "checkout-v1", Port: 8080, Weight: 50},
				{Variant: "one-page", Service: "checkout-v2", Port: 8080, Weight: 50},
			}}},
		Assignment: &traffic.AssignmentCookie{Name: assignment.CookieName(exp.Name), MaxAge: time.Hour, Secure: false,
			Value: func(seg, v string) string { return signed(key, exp, seg, v) }},
	}
	rules, err := gatewayapi.RenderChildRules(parent, "checkout-v1", plan)
	Expect(err).NotTo(HaveOccurred())
	Expect(rules).To(HaveLen(1))
	service := map[string]string{"control": "checkout-v1", "one-page": "checkout-v2"}[variant]
	h := http.Header{}
	for _, b := range rules[0].BackendRefs {
		if string(b.Name) != service {
			continue
		}
		for _, f := range b.Filters {
			if m := f.ResponseHeaderModifier; m != nil {
				for _, x := range m.Set {
					h.Set(string(x.Name), x.Value)
				}
				for _, x := range m.Add {
					h.Add(string(x.Name), x.Value)
				}
			}
		}
	}
	Expect(h.Values("Set-Cookie")).To(HaveLen(1), "the route sets the assignment cookie for %s", variant)
	return h
}

// shopSite serves a checkout page that includes the survey intercept, with
// the headers the gateway adds.
type shopSite struct {
	*httptest.Server
	mu        sync.Mutex
	headers   http.Header
	attrs     map[string]string
	collector string
	ns, exp   string
}

func newShopSite(host string) *shopSite {
	s := &shopSite{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/checkout" {
			http.NotFound(w, r)
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		for k, v := range s.headers {
			w.Header()[k] = v
		}
		var attrs strings.Builder
		for k, v := range s.attrs {
			fmt.Fprintf(&attrs, ` %s="%s"`, k, html.EscapeString(v))
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintf(w, `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Checkout</title></head>
<body><main><h1>Checkout</h1><button id="place-order" type="button">Place order</button></main>
<script>window.__rapport = [];
['answer', 'error', 'dismiss', 'skip'].forEach(function (n) {
  document.addEventListener('rapport:' + n, function (e) { window.__rapport.push({type: n, detail: e.detail}); });
});</script>
<script src="%s/v1/survey.js" defer data-namespace="%s" data-experiment="%s"%s></script>
</body></html>`, s.collector, s.ns, s.exp, attrs.String())
	}))
	s.Start()
	if host != "" { // reach it by name: another origin than 127.0.0.1
		u, _ := url.Parse(s.URL)
		s.URL = "http://" + host + ":" + u.Port()
	}
	return s
}

func (s *shopSite) serve(collectorURL, ns, exp string, headers http.Header, attrs map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.collector, s.ns, s.exp, s.headers, s.attrs = collectorURL, ns, exp, headers, attrs
}

// pageEvent is what the page recorded of the script's events.
type pageEvent struct {
	Type   string         `json:"type"`
	Detail map[string]any `json:"detail"`
}

const widget = `document.querySelector('[data-rapport-survey]')`

var _ = Describe("Survey intercept in a real browser", Ordered, func() {
	var (
		ctx     context.Context
		r       *replica
		browser context.Context
		shopWeb *shopSite
		evilWeb *shopSite
	)
	BeforeAll(func() {
		bin, err := utils.Chromium()
		if err != nil {
			if utils.InCI() {
				Fail("the browser tests need Chromium in CI: " + err.Error())
			}
			Skip("no browser: " + err.Error())
		}
		ctx = context.Background()
		r, err = startReplica(ctx, collector.Options{RateLimit: -1, PublicRateLimit: -1})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { Expect(r.stop()).To(Succeed()) })
		shopWeb = newShopSite("")
		DeferCleanup(shopWeb.Close)
		evilWeb = newShopSite("localhost")
		DeferCleanup(evilWeb.Close)

		alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), utils.ChromiumOptions(bin, GinkgoT().TempDir())...)
		DeferCleanup(cancelAlloc)
		var cancel context.CancelFunc
		browser, cancel = chromedp.NewContext(alloc)
		DeferCleanup(cancel)
		Expect(chromedp.Do(browser)).To(Succeed(), "start %s", bin)
	})

	// tab opens a tab in a fresh browser context (its own cookies); the tab
	// closes after the spec.
	tab := func() context.Context {
		t, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
		DeferCleanup(cancel)
		Expect(chromedp.Do(t)).To(Succeed())
		return t
	}
	// do runs actions with a deadline.
	do := func(t context.Context, actions ...chromedp.Action[chromedp.Void]) {
		GinkgoHelper()
		tctx, cancel := context.WithTimeout(t, time.Minute)
		defer cancel()
		Expect(chromedp.Do(tctx, actions...)).To(Succeed())
	}
	eval := func(t context.Context, js string) string {
		GinkgoHelper()
		tctx, cancel := context.WithTimeout(t, time.Minute)
		defer cancel()
		v, err := chromedp.Run(tctx, chromedp.Evaluate[*string](js))
		Expect(err).NotTo(HaveOccurred(), js)
		if v == nil {
			return ""
		}
		return *v
	}
	// until waits for a JavaScript condition in the page.
	until := func(t context.Context, js string) {
		GinkgoHelper()
		tctx, cancel := context.WithTimeout(t, time.Minute)
		defer cancel()
		_, err := chromedp.Run(tctx, chromedp.Poll[bool](js, chromedp.WithPollingInterval(50*time.Millisecond)))
		Expect(err).NotTo(HaveOccurred(), "waiting for %s", js)
	}
	events := func(t context.Context) []pageEvent {
		GinkgoHelper()
		var out []pageEvent
		Expect(json.Unmarshal([]byte(eval(t, `JSON.stringify(window.__rapport)`)), &out)).To(Succeed())
		return out
	}
	// open navigates to the shop's checkout and waits for the script.
	open := func(t context.Context, site *shopSite) {
		GinkgoHelper()
		do(t, chromedp.Navigate(site.URL+"/checkout"))
		until(t, `document.readyState === 'complete' && Array.isArray(window.__rapport)`)
	}
	inWidget := func(selector string) chromedp.JSPath {
		return chromedp.JSPath(widget + `.shadowRoot.querySelector('` + selector + `')`)
	}
	// setup makes an experiment whose browser answers the shop site may post.
	setup := func(metric cxv1.SatisfactionMetricKind) (*shop, *cxv1.CXExperiment, []byte) {
		s := newShop(ctx)
		exp, key := s.feedbackExperiment(ctx, "checkout", metric, []string{"enterprise"}, func(e *cxv1.CXExperiment) {
			e.Spec.Satisfaction.Source.Collector.Browser = &cxv1.BrowserFeedback{AllowedOrigins: []string{shopWeb.URL}}
		})
		r.waitSeen(ctx, exp, cxv1.PhaseProgressing, 1)
		return s, exp, key
	}
	clickTrigger := map[string]string{"data-trigger": "click:#place-order"}

	It("shows the question after the trigger and counts a clicked answer for the variant that served the customer, with no other request or cookie", func() {
		s, exp, key := setup(cxv1.MetricCSAT)
		shopWeb.serve(r.url, s.ns, "checkout", gatewayHeaders(exp, key, "enterprise", "one-page"),
			map[string]string{"data-trigger": "click:#place-order", "data-comment": "true", "data-question": "How easy was checking out?"})
		t := tab()
		Expect(chromedp.Call(t, network.Enable, network.EnableParams{})).Error().NotTo(HaveOccurred())
		var mu sync.Mutex
		var requests []*network.Request
		reqs := chromedp.Events(t, network.RequestWillBeSent)
		go func() {
			defer GinkgoRecover()
			for ev, err := range reqs {
				if err != nil {
					return
				}
				mu.Lock()
				requests = append(requests, ev.Request)
				mu.Unlock()
			}
		}()

		open(t, shopWeb)
		Expect(eval(t, `String(!`+widget+`)`)).To(Equal("true"), "no question before the trigger")
		do(t, chromedp.Click(chromedp.ID("place-order")))
		until(t, `!!`+widget+`?.shadowRoot?.querySelector('[data-score="4"]')`)

		By("labelling the question for assistive technology")
		Expect(eval(t, widget+`.shadowRoot.querySelector('[role=dialog]').getAttribute('aria-labelledby') === `+widget+`.shadowRoot.querySelector('.q').id ? 'labelled' : 'not'`)).To(Equal("labelled"))
		Expect(eval(t, widget+`.shadowRoot.querySelector('.q').textContent`)).To(Equal("How easy was checking out?"))
		Expect(eval(t, `String(`+widget+`.shadowRoot.querySelectorAll('[role=radiogroup] [role=radio]').length)`)).To(Equal("5"))
		Expect(eval(t, widget+`.shadowRoot.querySelector('[data-score="5"]').getAttribute('aria-label')`)).To(Equal("5, Very satisfied"))

		do(t, chromedp.Click(inWidget(`[data-score="4"]`)),
			chromedp.SendKeys(inWidget(`textarea`), "Quicker address entry"),
			chromedp.Click(inWidget(`.send`)))
		until(t, `window.__rapport.some(e => e.type === 'answer' || e.type === 'error')`)
		ev := events(t)
		Expect(ev).To(HaveLen(1))
		Expect(ev[0].Type).To(Equal("answer"), "%+v", ev)
		Expect(ev[0].Detail).To(HaveKeyWithValue("score", 4.0))
		Expect(ev[0].Detail).To(HaveKeyWithValue("comment", "Quicker address entry"))
		Expect(ev[0].Detail).To(HaveKeyWithValue("duplicate", false))
		until(t, widget+`.shadowRoot.querySelector('.status').textContent === 'Thank you!'`)

		t2, err := getTally(ctx, s.ns, "checkout")
		Expect(err).NotTo(HaveOccurred())
		Expect(scoresOf(t2, "enterprise", "one-page")).To(Equal([]int64{0, 0, 0, 1, 0}))
		Expect(t2.Spec.Total).To(Equal(int64(1)))

		By("talking to nobody but the page's own origin and the collector, and never sending the comment")
		mu.Lock()
		defer mu.Unlock()
		var posted []string
		for _, q := range requests {
			u, err := url.Parse(q.URL)
			Expect(err).NotTo(HaveOccurred())
			origin := u.Scheme + "://" + u.Host
			Expect(origin).To(BeElementOf(shopWeb.URL, r.url), "request to %s", q.URL)
			if q.Method == http.MethodPost {
				for _, e := range q.PostDataEntries {
					posted = append(posted, string(e.Bytes))
				}
			}
		}
		Expect(posted).To(HaveLen(1))
		var body map[string]any
		Expect(json.Unmarshal([]byte(posted[0]), &body)).To(Succeed(), "%q", posted[0])
		Expect(body).To(HaveLen(3))
		Expect(body).To(HaveKey("assignment"))
		Expect(body).To(HaveKey("respondent"))
		Expect(body).To(HaveKeyWithValue("score", 4.0))

		By("setting no cookie but the gateway's assignment and its own")
		cookies, err := chromedp.Call(t, network.GetCookies, network.GetCookiesParams{URLs: []string{shopWeb.URL, r.url}})
		Expect(err).NotTo(HaveOccurred())
		var names []string
		for _, c := range cookies.Cookies {
			names = append(names, c.Name)
		}
		Expect(names).To(ConsistOf("rapport-checkout", "rapport-survey-checkout"))
	})

	It("answers with the keyboard alone, and respects reduced motion", func() {
		s, exp, key := setup(cxv1.MetricCSAT)
		shopWeb.serve(r.url, s.ns, "checkout", gatewayHeaders(exp, key, "enterprise", "control"), clickTrigger)
		t := tab()
		Expect(chromedp.Call(t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-reduced-motion", Value: "reduce"}}})).Error().NotTo(HaveOccurred())
		open(t, shopWeb)

		do(t, chromedp.KeyEvent(kb.Tab)) // to the page's first control
		until(t, `document.activeElement && document.activeElement.id === 'place-order'`)
		do(t, chromedp.KeyEvent(kb.Enter))
		until(t, widget+`?.shadowRoot?.activeElement?.dataset.score === '1'`)
		Expect(eval(t, `getComputedStyle(`+widget+`.shadowRoot.querySelector('.box')).animationName`)).To(Equal("none"))

		do(t, chromedp.KeyEvent(kb.ArrowRight), chromedp.KeyEvent(kb.ArrowRight))
		until(t, widget+`.shadowRoot.activeElement.dataset.score === '3' && `+widget+`.shadowRoot.activeElement.getAttribute('aria-checked') === 'true'`)
		do(t, chromedp.KeyEvent(kb.Tab))
		until(t, widget+`.shadowRoot.activeElement.classList.contains('send')`)
		do(t, chromedp.KeyEvent(kb.Enter))
		until(t, `window.__rapport.some(e => e.type === 'answer' || e.type === 'error')`)
		Expect(events(t)[0].Type).To(Equal("answer"))
		Expect(events(t)[0].Detail).To(HaveKeyWithValue("score", 3.0))
		t2, err := getTally(ctx, s.ns, "checkout")
		Expect(err).NotTo(HaveOccurred())
		Expect(scoresOf(t2, "enterprise", "control")).To(Equal([]int64{0, 0, 1, 0, 0}))

		By("giving the focus back to where it was when the question goes")
		until(t, `!`+widget+` && document.activeElement.id === 'place-order'`)
	})

	It("refuses an answer with a tampered cookie, says so, and counts nothing", func() {
		s, exp, key := setup(cxv1.MetricCSAT)
		shopWeb.serve(r.url, s.ns, "checkout", gatewayHeaders(exp, key, "enterprise", "control"), clickTrigger)
		t := tab()
		open(t, shopWeb)
		// The customer claims the other variant.
		eval(t, `(function () {
			var v = document.cookie.split('; ').find(c => c.startsWith('rapport-checkout=')).slice('rapport-checkout='.length);
			document.cookie = 'rapport-checkout=' + v.replace('~control~', '~one-page~') + '; Path=/';
			return document.cookie.includes('~one-page~') ? 'tampered' : 'unchanged';
		})()`)
		do(t, chromedp.Click(chromedp.ID("place-order")))
		until(t, `!!`+widget+`?.shadowRoot?.querySelector('[data-score="5"]')`)
		do(t, chromedp.Click(inWidget(`[data-score="5"]`)), chromedp.Click(inWidget(`.send`)))
		until(t, `window.__rapport.some(e => e.type === 'answer' || e.type === 'error')`)
		ev := events(t)
		Expect(ev[0].Type).To(Equal("error"))
		Expect(ev[0].Detail).To(HaveKeyWithValue("status", 403.0))
		Expect(ev[0].Detail["message"]).To(ContainSubstring("signature does not match"))
		Expect(eval(t, widget+`.shadowRoot.querySelector('.status').textContent`)).To(Equal("Sorry, your answer could not be sent."))
		Expect(tallyTotal(ctx, s.ns, "checkout")).To(BeZero())
	})

	It("asks a customer once per run, and counts a second answer of the same customer once", func() {
		s, exp, key := setup(cxv1.MetricCSAT)
		shopWeb.serve(r.url, s.ns, "checkout", gatewayHeaders(exp, key, "enterprise", "one-page"), clickTrigger)
		t := tab()
		answer := func(score string) pageEvent {
			GinkgoHelper()
			do(t, chromedp.Click(chromedp.ID("place-order")))
			until(t, `!!`+widget+`?.shadowRoot?.querySelector('[data-score="`+score+`"]')`)
			do(t, chromedp.Click(inWidget(`[data-score="`+score+`"]`)), chromedp.Click(inWidget(`.send`)))
			until(t, `window.__rapport.some(e => e.type === 'answer' || e.type === 'error')`)
			return events(t)[0]
		}
		open(t, shopWeb)
		first := answer("5")
		Expect(first.Type).To(Equal("answer"))
		Expect(first.Detail).To(HaveKeyWithValue("duplicate", false))

		By("not asking again on the next visit")
		open(t, shopWeb)
		do(t, chromedp.Click(chromedp.ID("place-order")))
		until(t, `window.__rapport.some(e => e.type === 'skip')`)
		Expect(events(t)[0].Detail).To(HaveKeyWithValue("reason", "already-asked"))
		Expect(eval(t, `String(!`+widget+`)`)).To(Equal("true"))

		By("counting once a customer who clears the survey's memory and answers again")
		eval(t, `(function () {
			var v = document.cookie.split('; ').find(c => c.startsWith('rapport-survey-checkout=')).slice('rapport-survey-checkout='.length);
			document.cookie = 'rapport-survey-checkout=' + v.replace(/\.a$/, '.p') + '; Path=/';
			return v;
		})()`)
		open(t, shopWeb)
		second := answer("1")
		Expect(second.Type).To(Equal("answer"))
		Expect(second.Detail).To(HaveKeyWithValue("duplicate", true))
		t2, err := getTally(ctx, s.ns, "checkout")
		Expect(err).NotTo(HaveOccurred())
		Expect(t2.Spec.Total).To(Equal(int64(1)))
		Expect(scoresOf(t2, "enterprise", "one-page")).To(Equal([]int64{0, 0, 0, 0, 1}))
	})

	It("refuses posts from a page on another origin", func() {
		s, exp, key := setup(cxv1.MetricCSAT)
		evilWeb.serve(r.url, s.ns, "checkout", gatewayHeaders(exp, key, "enterprise", "one-page"), clickTrigger)
		before := rejections(s.ns, "browser/checkout", "OriginNotAllowed")
		t := tab()
		open(t, evilWeb)
		do(t, chromedp.Click(chromedp.ID("place-order")))
		until(t, `window.__rapport.some(e => e.type === 'skip')`)
		Expect(events(t)[0].Detail).To(HaveKeyWithValue("reason", "settings-unavailable"))
		Expect(eval(t, `String(!`+widget+`)`)).To(Equal("true"))

		By("blocking the page's own attempts with a valid assignment, with and without a preflight")
		value := signed(key, exp, "enterprise", "one-page")
		post := fmt.Sprintf(`%s/v1/public/namespaces/%s/experiments/checkout/responses`, r.url, s.ns)
		body, _ := json.Marshal(map[string]any{"assignment": value, "respondent": "evil-000000001", "score": 1})
		for _, ct := range []string{"application/json", "text/plain"} {
			tctx, cancel := context.WithTimeout(t, time.Minute)
			got, err := chromedp.Run(tctx, chromedp.Evaluate[string](fmt.Sprintf(`fetch(%q, {method: 'POST', headers: {'Content-Type': %q}, body: %q})
				.then(r => 'status ' + r.status, e => 'blocked: ' + e.message)`, post, ct, body), chromedp.EvalAwaitPromise))
			cancel()
			Expect(err).NotTo(HaveOccurred())
			Expect(got).To(HavePrefix("blocked:"), ct)
		}
		Expect(rejections(s.ns, "browser/checkout", "OriginNotAllowed")-before).To(BeNumerically(">=", 3), "the settings, a preflight and the simple request were refused")
		Expect(tallyTotal(ctx, s.ns, "checkout")).To(BeZero())
	})

	It("asks only the sampled share of customers", func() {
		s, exp, key := setup(cxv1.MetricNPS)
		shopWeb.serve(r.url, s.ns, "checkout", gatewayHeaders(exp, key, "enterprise", "control"), map[string]string{"data-sample": "0"})
		t := tab()
		open(t, shopWeb)
		until(t, `window.__rapport.some(e => e.type === 'skip')`)
		Expect(events(t)[0].Detail).To(HaveKeyWithValue("reason", "sampled-out"))
		Expect(eval(t, `document.cookie.split('; ').find(c => c.startsWith('rapport-survey-checkout=')).endsWith('.1.s') ? 'remembered' : document.cookie`)).To(Equal("remembered"))
		Expect(eval(t, `String(!`+widget+`)`)).To(Equal("true"))
	})
})
