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
	"errors"
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
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
// headers either. TestSegmentOfFollowsShop keeps it in step with shop.yaml.
func segmentOf(r *http.Request) string {
	if r.Header.Get("x-customer-tier") == "enterprise" {
		return "enterprise"
	}
	if c, err := r.Cookie("lifecycle"); err == nil && c.Value == "new" {
		return "new-customers"
	}
	return ""
}

// assignmentKey is the experiment's signing key, read once for the pages
// and the webhook.
type assignmentKey struct {
	mu  sync.Mutex
	key []byte
}

// errNotInExperiment says why a customer gets no assignment.
var errNotInExperiment = errors.New("not in the experiment")

// sign returns the signed assignment of a customer of segment served by
// variant in the experiment's current run and epoch. A customer in no
// segment, in a segment routed entirely to the control, or served after
// the run ended is not in the experiment (errNotInExperiment, with why).
func (d *demo) sign(ctx context.Context, segment, variant string) (string, error) {
	if segment == "" {
		return "", fmt.Errorf("%w: in no segment", errNotInExperiment)
	}
	exp, err := d.experiment(ctx)
	if err != nil {
		return "", err
	}
	if exp.Status.Run < 1 || exp.Status.Phase.Terminal() {
		return "", fmt.Errorf("%w: the experiment is %s", errNotInExperiment, exp.Status.Phase)
	}
	var status cxv1.SegmentStatus
	for _, s := range exp.Status.Segments {
		if s.Name == segment {
			status = s
		}
	}
	tried := false
	for _, v := range status.Variants {
		tried = tried || (v.Name != exp.Spec.ControlVariant().Name && v.Weight > 0)
	}
	if !tried {
		return "", fmt.Errorf("%w: segment %s is routed entirely to the control", errNotInExperiment, segment)
	}
	k := &d.assignmentKey
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.key == nil {
		secret := &corev1.Secret{}
		if err := d.c.Get(ctx, types.NamespacedName{Namespace: demoNS, Name: assignment.SecretName(expName)}, secret); err != nil {
			return "", fmt.Errorf("read the assignment key: %w", err)
		}
		k.key = secret.Data[cxv1.AssignmentKeyDataKey]
	}
	return assignment.Sign(k.key, assignment.Assignment{
		Namespace: demoNS, Experiment: expName, Run: exp.Status.Run,
		Segment: segment, Variant: variant, Epoch: status.Epoch,
	}), nil
}

// surveyPage is the checkout page of the variant served by service, with
// the survey intercept asking after "Place order". It sets the signed
// assignment cookie for customers in the experiment.
func (d *demo) surveyPage(service, variant, page string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		value, err := d.sign(r.Context(), segmentOf(r), variant)
		if err != nil && !errors.Is(err, errNotInExperiment) {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		if err == nil {
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

// servePages adds the survey page to the checkout backends (started in
// the order of shopBackends) of the experiment's variants.
func (d *demo) servePages(ctx context.Context) error {
	exp, err := d.experiment(ctx)
	if err != nil {
		return err
	}
	variantOf := variantsByService(exp)
	for i, b := range shopBackends {
		if variant, ok := variantOf[b.service]; ok {
			d.onWire.backends[i].Handle(surveyPath, d.surveyPage(b.service, variant, b.page))
		}
	}
	return nil
}

// variantsByService maps each variant's Service to the variant.
func variantsByService(exp *cxv1.CXExperiment) map[string]string {
	m := map[string]string{}
	for _, v := range exp.Spec.Variants {
		if v.Service != nil {
			m[v.Service.Name] = v.Name
		}
	}
	return m
}

// answerSegment is the segment of the customers who answer in the browser
// and through Typeform: it stays in the experiment to the end.
const answerSegment = "new-customers"

// tallyOf returns the experiment's count for answerSegment and variant.
func (d *demo) tallyOf(ctx context.Context, variant string) (int64, error) {
	t := &cxv1.ResponseTally{}
	if err := d.c.Get(ctx, types.NamespacedName{Namespace: demoNS, Name: expName}, t); apierrors.IsNotFound(err) {
		return 0, nil // no answer yet
	} else if err != nil {
		return 0, fmt.Errorf("read the tally: %w", err)
	}
	var n int64
	for _, c := range t.Spec.Counts {
		if c.Segment == answerSegment && c.Variant == variant {
			for _, k := range c.Scores {
				n += k
			}
		}
	}
	return n, nil
}

// moved reads the tally after an answer and says how it moved.
func (d *demo) moved(ctx context.Context, variant string, before int64) (string, error) {
	after, err := d.tallyOf(ctx, variant)
	if err != nil {
		return "", err
	}
	if after <= before {
		return "", fmt.Errorf("the answer was acknowledged but the tally of %s/%s did not move (%d -> %d)", answerSegment, variant, before, after)
	}
	return fmt.Sprintf("tally %s/%s: %d -> %d answers", answerSegment, variant, before, after), nil
}

// realAnswers runs both touchpoints and says what each counted; what did
// not happen is said again in the story, so it cannot go unnoticed.
func (d *demo) realAnswers(ctx context.Context) {
	if !d.wire {
		d.answer("browser widget: skipped, it needs the real customers' proxy (a private network namespace)")
	} else if err := d.browserAnswer(ctx); err != nil {
		d.answer("browser widget: FAILED: %v", err)
	}
	if err := d.webhookAnswer(ctx); err != nil {
		d.answer("Typeform webhook: FAILED: %v", err)
	}
}

// answer says a line of the real answers now and in the story.
func (d *demo) answer(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	d.say("%s", line)
	d.answered = append(d.answered, line)
}

// browserAnswer has a new customer open the checkout through the proxy in
// headless Chromium, click "Place order" and answer the question.
func (d *demo) browserAnswer(ctx context.Context) error {
	bin, err := utils.Chromium()
	if err != nil {
		d.answer("browser widget: skipped: %v", err)
		return nil
	}
	// The first step may end after 60 s without answers: keep well within.
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
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
	p := page{tab}
	service, variant, err := p.open()
	if err != nil {
		return err
	}
	d.say("a new customer opens %s%s in Chromium (headless): Traefik sent the request to %s (variant %s), whose page set the signed assignment cookie %s and includes %s/v1/survey.js",
		shopOrigin, surveyPath, service, variant, assignment.CookieName(expName), "http://"+feedbackHost+":"+gatewayPort)
	before, err := d.tallyOf(ctx, variant)
	if err != nil {
		return err
	}
	question, err := p.answer(5)
	if err != nil {
		return err
	}
	tally, err := d.moved(ctx, variant, before)
	if err != nil {
		return err
	}
	d.say("after \"Place order\" the intercept asked %q; the customer clicked 5 and Send: the collector's public endpoint counted it (%s)", question, tally)
	d.answered = append(d.answered, "browser widget (Chromium through Traefik): 1 answer, score 5 ("+tally+")")
	return nil
}

// page is the checkout page in a browser tab.
type page struct{ tab context.Context }

// widget is the survey intercept's element; its question is in its shadow root.
const widget = `document.querySelector('[data-rapport-survey]')`

func (p page) eval(js string) (string, error) {
	v, err := chromedp.Run(p.tab, chromedp.Evaluate[*string](js))
	if err != nil || v == nil {
		return "", err
	}
	return *v, nil
}

func (p page) until(what, js string) error {
	if _, err := chromedp.Run(p.tab, chromedp.Poll[bool](js, chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		return fmt.Errorf("waiting for %s: %w", what, err)
	}
	return nil
}

// events returns what the page recorded of the script's events.
func (p page) events() ([]pageEvent, error) {
	raw, err := p.eval(`JSON.stringify(window.__rapport)`)
	if err != nil {
		return nil, err
	}
	var got []pageEvent
	if err := json.Unmarshal([]byte(raw), &got); err != nil {
		return nil, fmt.Errorf("the page's events %s: %w", raw, err)
	}
	return got, nil
}

// open loads the checkout as a new customer and returns the Service and
// variant that served it; the page must have set the assignment cookie.
func (p page) open() (service, variant string, err error) {
	// A new customer: the cookie new-customers matches.
	if _, err := chromedp.Call(p.tab, network.SetCookie, network.SetCookieParams{Name: "lifecycle", Value: "new", Domain: shopHost, Path: "/"}); err != nil {
		return "", "", fmt.Errorf("set the customer's cookie: %w", err)
	}
	if err := chromedp.Do(p.tab, chromedp.Navigate(shopOrigin+surveyPath)); err != nil {
		return "", "", fmt.Errorf("open %s: %w", shopOrigin+surveyPath, err)
	}
	if err := p.until("the page", `document.readyState === 'complete' && Array.isArray(window.__rapport)`); err != nil {
		return "", "", err
	}
	if service, err = p.eval(`document.body.dataset.service`); err != nil {
		return "", "", err
	}
	if variant, err = p.eval(`document.body.dataset.variant`); err != nil {
		return "", "", err
	}
	name := assignment.CookieName(expName)
	cookie, err := p.eval(`String(document.cookie.split('; ').some(c => c.startsWith('` + name + `=')))`)
	if err != nil {
		return "", "", err
	}
	if cookie != "true" {
		return "", "", fmt.Errorf("%s served the page without the assignment cookie %s", service, name)
	}
	return service, variant, nil
}

// answer clicks "Place order", waits for the question, answers score and
// returns the question once the collector acknowledged the answer.
func (p page) answer(score int) (string, error) {
	if err := chromedp.Do(p.tab, chromedp.Click(chromedp.ID("place-order"))); err != nil {
		return "", err
	}
	button := fmt.Sprintf(`[data-score="%d"]`, score)
	// The script either asks, or gives up and says why (rapport:skip).
	if err := p.until("the question", `!!`+widget+`?.shadowRoot?.querySelector('`+button+`') || window.__rapport.length > 0`); err != nil {
		return "", err
	}
	if got, err := p.events(); err != nil || len(got) > 0 {
		return "", fmt.Errorf("the survey intercept did not ask: %+v %v", got, err)
	}
	question, _ := p.eval(widget + `.shadowRoot.querySelector('.q').textContent`)
	inWidget := func(selector string) chromedp.JSPath {
		return chromedp.JSPath(widget + `.shadowRoot.querySelector('` + selector + `')`)
	}
	if err := chromedp.Do(p.tab, chromedp.Click(inWidget(button)), chromedp.Click(inWidget(`.send`))); err != nil {
		return "", err
	}
	if err := p.until("the answer's acknowledgement", `window.__rapport.some(e => e.type === 'answer' || e.type === 'error')`); err != nil {
		return "", err
	}
	got, err := p.events()
	if err != nil {
		return "", err
	}
	if len(got) == 0 || got[0].Type != "answer" {
		return "", fmt.Errorf("the survey intercept said %+v", got)
	}
	return question, nil
}

// pageEvent is what the page recorded of one of the script's events.
type pageEvent struct {
	Type   string         `json:"type"`
	Detail map[string]any `json:"detail"`
}

// webhookAnswer posts, as Typeform would, its documented form_response (the
// fixture of internal/feedback/testdata) for a new customer served by the
// one-page checkout, signed with the FeedbackSource's secret. The demo signs
// the customer's assignment itself: in production the page that opens the
// form puts its cookie's value into the form's hidden field.
func (d *demo) webhookAnswer(ctx context.Context) error {
	src := &cxv1.FeedbackSource{}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := d.c.Get(ctx, types.NamespacedName{Namespace: demoNS, Name: typeformSource}, src)
		ready := apimeta.FindStatusCondition(src.Status.Conditions, cxv1.ConditionReady)
		if err == nil && ready != nil && ready.Status == metav1.ConditionTrue {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			why := "no Ready condition yet"
			if err != nil {
				why = err.Error()
			} else if ready != nil {
				why = ready.Reason + ": " + ready.Message
			}
			return fmt.Errorf("FeedbackSource %s is not Ready (%s): see kubectl get cxfs -n %s", typeformSource, why, demoNS)
		}
		time.Sleep(100 * time.Millisecond) // polling the status the controller writes
	}
	secret := &corev1.Secret{}
	if err := d.c.Get(ctx, types.NamespacedName{Namespace: demoNS, Name: typeformSecret}, secret); err != nil {
		return err
	}
	variant := "one-page"
	value, err := d.sign(ctx, answerSegment, variant)
	if err != nil {
		return fmt.Errorf("sign the assignment: %w", err)
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
	before, err := d.tallyOf(ctx, variant)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(header, signature)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	reply, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %s: %s", url, resp.Status, strings.TrimSpace(string(reply)))
	}
	tally, err := d.moved(ctx, variant, before)
	if err != nil {
		return err
	}
	d.say("the demo posts, as Typeform would, a webhook to FeedbackSource %s (Typeform's documented form_response, event %s, %s signed with the source's secret, hidden field rapport = the signed assignment of a new customer served by %s): POST %s -> %s; %s",
		typeformSource, id, header, variant, src.Status.WebhookPath, resp.Status, tally)
	d.answered = append(d.answered, fmt.Sprintf("Typeform webhook (FeedbackSource %s): 1 answer, score 4 (%s)", typeformSource, tally))
	return nil
}
