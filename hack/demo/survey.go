package main

// Real answers: before the shoppers start, one customer answers in a real
// browser (Chromium, headless) through the survey intercept, and a survey
// tool (Typeform) sends a signed webhook for another; each answer is shown
// moving the experiment's tally.
//
// The demo's checkout backends attach the variant themselves, under the
// contract of docs/measurement.md ("Apps that attach the variant
// themselves"): Traefik does not apply the per-backendRef response filter
// that carries the assignment cookie, so the backend that served the page
// signs the assignment with the experiment's key and sets the cookie. The
// collector's browser paths are behind the same Gateway
// (feedback.example.com, hack/demo/shop.yaml), so the page and the
// collector are two origins of one public network, as in production.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/assignment"
	"github.com/rapport-dev/rapport/internal/feedback"
	"github.com/rapport-dev/rapport/test/utils"
	"github.com/rapport-dev/rapport/test/utils/netns"
)

const (
	// feedbackHost is the collector's browser paths behind the Gateway
	// (hack/demo/shop.yaml's HTTPRoute feedback).
	feedbackHost = "feedback.example.com"
	// surveyPath is the checkout page with the survey intercept.
	surveyPath = "/checkout/survey"
	// typeformSource is hack/demo/shop.yaml's FeedbackSource and its Secret.
	typeformSource = "typeform"
	typeformSecret = "typeform-webhook"
)

// shopOrigin is the origin customers' browsers see (the Gateway's listener
// port), allowed by the experiment's browser settings.
const shopOrigin = "http://" + shopHost + ":" + gatewayPort

// segmentOf says which of hack/demo/shop.yaml's CustomerSegments a request
// belongs to, as the route's matches do ("" for none): the backend needs it
// to sign the assignment, since Traefik does not pass the tagRequests
// headers either.
func segmentOf(r *http.Request) string {
	if r.Header.Get("x-customer-tier") == "enterprise" {
		return "enterprise"
	}
	if c, err := r.Cookie("lifecycle"); err == nil && c.Value == "new" {
		return "new-customers"
	}
	return ""
}

// assigner signs assignments for the demo experiment's current run.
type assigner struct {
	d  *demo
	mu sync.Mutex
	// key is the experiment's assignment key, read once.
	key []byte
}

// sign returns the signed assignment of a customer of segment served by
// variant in the experiment's current run and epoch, or "" when the
// customer is not in the experiment.
func (a *assigner) sign(ctx context.Context, segment, variant string) (string, error) {
	if segment == "" {
		return "", nil
	}
	exp, err := a.d.experiment(ctx)
	if err != nil {
		return "", err
	}
	if exp.Status.Run < 1 || exp.Status.Phase.Terminal() {
		return "", nil
	}
	var epoch int32
	for _, s := range exp.Status.Segments {
		if s.Name == segment {
			epoch = s.Epoch
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.key == nil {
		secret := &corev1.Secret{}
		if err := a.d.c.Get(ctx, types.NamespacedName{Namespace: demoNS, Name: assignment.SecretName(expName)}, secret); err != nil {
			return "", fmt.Errorf("read the assignment key: %w", err)
		}
		a.key = secret.Data[cxv1.AssignmentKeyDataKey]
	}
	return assignment.Sign(a.key, assignment.Assignment{
		Namespace: demoNS, Experiment: expName, Run: exp.Status.Run,
		Segment: segment, Variant: variant, Epoch: epoch,
	}), nil
}

// surveyPage is the checkout page of the variant served by service, with
// the survey intercept asking after "Place order". It sets the signed
// assignment cookie for customers in the experiment.
func (d *demo) surveyPage(a *assigner, service, variant, page string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		value, err := a.sign(r.Context(), segmentOf(r), variant)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		if value != "" {
			w.Header().Add("Set-Cookie", assignment.SetCookie(assignment.CookieName(expName), value, time.Hour, false))
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintf(w, `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Checkout</title></head>
<body data-service="%s" data-variant="%s"><main><h1>Checkout: %s</h1>
<button id="place-order" type="button">Place order</button></main>
<script>window.__rapport = [];
['answer', 'error', 'dismiss', 'skip'].forEach(function (n) {
  document.addEventListener('rapport:' + n, function (e) { window.__rapport.push({type: n, detail: e.detail}); });
});</script>
<script src="http://%s:%s/v1/survey.js" defer data-namespace="%s" data-experiment="%s" data-touchpoint="checkout"
  data-trigger="click:#place-order" data-question="How easy was it to pay today?"></script>
</body></html>`, html.EscapeString(service), html.EscapeString(variant), html.EscapeString(page),
			feedbackHost, gatewayPort, demoNS, expName)
	})
}

// servePages adds the survey page to the checkout backends and publishes
// the collector's endpoint behind the Gateway.
func (d *demo) servePages(ctx context.Context) error {
	w := d.onWire
	a := &assigner{d: d}
	exp, err := d.experiment(ctx)
	if err != nil {
		return err
	}
	for _, b := range w.backends {
		for _, v := range exp.Spec.Variants {
			if v.Service != nil && v.Service.Name == b.Name {
				page := ""
				for _, sb := range shopBackends {
					if sb.service == b.Name {
						page = sb.page
					}
				}
				b.Handle(surveyPath, d.surveyPage(a, b.Name, v.Name, page))
			}
		}
	}
	return nil
}

// answerSegment is the segment of the customers who answer in the browser
// and through Typeform: it stays in the experiment to the end.
const answerSegment = "new-customers"

// tallyOf returns the experiment's count for answerSegment and variant.
func (d *demo) tallyOf(ctx context.Context, variant string) int64 {
	t := &cxv1.ResponseTally{}
	if err := d.c.Get(ctx, types.NamespacedName{Namespace: demoNS, Name: expName}, t); err != nil {
		return 0
	}
	var n int64
	for _, c := range t.Spec.Counts {
		if c.Segment == answerSegment && c.Variant == variant {
			for _, k := range c.Scores {
				n += k
			}
		}
	}
	return n
}

// realAnswers runs both touchpoints and says what each counted.
func (d *demo) realAnswers(ctx context.Context) {
	if d.wire {
		if err := d.browserAnswer(ctx); err != nil {
			d.say("the survey intercept in Chromium failed: %v", err)
		}
	} else {
		d.say("the survey intercept needs the real customers' proxy (a private network namespace): skipped")
	}
	if err := d.webhookAnswer(ctx); err != nil {
		d.say("the Typeform webhook failed: %v", err)
	}
}

// browserAnswer has a new customer open the checkout through the proxy in
// headless Chromium, click "Place order" and answer the question.
func (d *demo) browserAnswer(ctx context.Context) error {
	bin, err := utils.Chromium()
	if err != nil {
		d.say("the survey intercept in a real browser is skipped: %v", err)
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	dir, err := os.MkdirTemp(d.dir, "chromium-")
	if err != nil {
		return err
	}
	opts := append(utils.ChromiumOptions(bin, dir),
		// Both names are the Gateway's listener, as DNS would say.
		chromedp.Flag("host-resolver-rules", fmt.Sprintf("MAP %s %s, MAP %s %s", shopHost, netns.Host, feedbackHost, netns.Host)))
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	tab, cancelTab := chromedp.NewContext(alloc)
	defer cancelTab()
	if err := chromedp.Do(tab); err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	eval := func(js string) (string, error) {
		v, err := chromedp.Run(tab, chromedp.Evaluate[*string](js))
		if err != nil || v == nil {
			return "", err
		}
		return *v, nil
	}
	until := func(js string) error {
		_, err := chromedp.Run(tab, chromedp.Poll[bool](js, chromedp.WithPollingInterval(50*time.Millisecond)))
		return err
	}
	const widget = `document.querySelector('[data-rapport-survey]')`
	inWidget := func(selector string) chromedp.JSPath {
		return chromedp.JSPath(widget + `.shadowRoot.querySelector('` + selector + `')`)
	}
	// A new customer: the cookie new-customers matches.
	if _, err := chromedp.Call(tab, network.SetCookie, network.SetCookieParams{Name: "lifecycle", Value: "new", Domain: shopHost, Path: "/"}); err != nil {
		return fmt.Errorf("set the customer's cookie: %w", err)
	}
	if err := chromedp.Do(tab, chromedp.Navigate(shopOrigin+surveyPath)); err != nil {
		return fmt.Errorf("open %s: %w", shopOrigin+surveyPath, err)
	}
	if err := until(`document.readyState === 'complete' && Array.isArray(window.__rapport)`); err != nil {
		return err
	}
	service, err := eval(`document.body.dataset.service`)
	if err != nil {
		return err
	}
	variant, err := eval(`document.body.dataset.variant`)
	if err != nil {
		return err
	}
	d.say("a new customer opens %s%s in Chromium (headless): Traefik sent the request to %s (variant %s), whose page set the signed assignment cookie and includes %s/v1/survey.js",
		shopOrigin, surveyPath, service, variant, "http://"+feedbackHost+":"+gatewayPort)
	before := d.tallyOf(ctx, variant)
	if err := chromedp.Do(tab, chromedp.Click(chromedp.ID("place-order"))); err != nil {
		return err
	}
	if err := until(`!!` + widget + `?.shadowRoot?.querySelector('[data-score="5"]')`); err != nil {
		return fmt.Errorf("the question did not appear after the click: %w", err)
	}
	question, _ := eval(widget + `.shadowRoot.querySelector('.q').textContent`)
	if err := chromedp.Do(tab, chromedp.Click(inWidget(`[data-score="5"]`)), chromedp.Click(inWidget(`.send`))); err != nil {
		return err
	}
	if err := until(`window.__rapport.some(e => e.type === 'answer' || e.type === 'error')`); err != nil {
		return err
	}
	events, err := eval(`JSON.stringify(window.__rapport)`)
	if err != nil {
		return err
	}
	var got []struct {
		Type   string         `json:"type"`
		Detail map[string]any `json:"detail"`
	}
	if err := json.Unmarshal([]byte(events), &got); err != nil || len(got) == 0 {
		return fmt.Errorf("the page's events %s: %v", events, err)
	}
	if got[0].Type != "answer" {
		return fmt.Errorf("the survey intercept said %s: %v", got[0].Type, got[0].Detail)
	}
	after := d.tallyOf(ctx, variant)
	d.say("after \"Place order\" the intercept asked %q; the customer clicked 5 and Send: the collector's public endpoint counted it (tally %s/%s: %d -> %d answers)",
		question, answerSegment, variant, before, after)
	d.answered = append(d.answered, fmt.Sprintf("browser widget (Chromium through Traefik): 1 answer, score 5, for %s/%s (tally %d -> %d)", answerSegment, variant, before, after))
	return nil
}

// webhookAnswer posts Typeform's documented form_response (the fixture of
// internal/feedback/testdata) for a new customer served by the one-page
// checkout, signed as Typeform signs it.
func (d *demo) webhookAnswer(ctx context.Context) error {
	src := &cxv1.FeedbackSource{}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := d.c.Get(ctx, types.NamespacedName{Namespace: demoNS, Name: typeformSource}, src)
		if err == nil && apimeta.IsStatusConditionTrue(src.Status.Conditions, cxv1.ConditionReady) {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("FeedbackSource %s is not Ready (%v): see kubectl get cxfs -n %s", typeformSource, err, demoNS)
		}
		time.Sleep(100 * time.Millisecond) // polling the status the controller writes
	}
	secret := &corev1.Secret{}
	if err := d.c.Get(ctx, types.NamespacedName{Namespace: demoNS, Name: typeformSecret}, secret); err != nil {
		return err
	}
	variant := "one-page"
	value, err := (&assigner{d: d}).sign(ctx, answerSegment, variant)
	if err != nil || value == "" {
		return fmt.Errorf("sign the assignment (%q): %v", value, err)
	}
	fixture, err := os.ReadFile(filepath.Join(utils.RepoRoot(), "internal", "feedback", "testdata", "typeform-form_response.json"))
	if err != nil {
		return err
	}
	var payload map[string]any
	if err := json.Unmarshal(bytes.ReplaceAll(fixture, []byte("{{ASSIGNMENT}}"), []byte(value)), &payload); err != nil {
		return fmt.Errorf("the Typeform fixture: %w", err)
	}
	// Each demo run is a new submission (the collector counts an event id once).
	id := fmt.Sprintf("demo-%d", time.Now().UnixNano())
	payload["event_id"] = id
	if fr, ok := payload["form_response"].(map[string]any); ok {
		fr["token"] = id
	}
	body, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	url := d.collector + src.Status.WebhookPath
	header, signature := feedback.Sign(cxv1.ProviderTypeform, nil, secret.Data, body)
	before := d.tallyOf(ctx, variant)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(header, signature)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	reply, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %s: %s", url, resp.Status, strings.TrimSpace(string(reply)))
	}
	after := d.tallyOf(ctx, variant)
	d.say("Typeform sends a webhook (its documented form_response, event %s, %s signed with the FeedbackSource's secret, hidden field rapport = the assignment of a new customer served by %s): POST %s -> %s; tally %s/%s: %d -> %d answers",
		id, header, variant, src.Status.WebhookPath, resp.Status, answerSegment, variant, before, after)
	d.answered = append(d.answered, fmt.Sprintf("Typeform webhook (FeedbackSource %s): 1 answer, score 4, for %s/%s (tally %d -> %d)", typeformSource, answerSegment, variant, before, after))
	return nil
}
