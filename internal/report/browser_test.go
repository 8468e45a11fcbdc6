package report

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/rapport-dev/rapport/test/utils"
)

// chartCheck is what the browser reports of one chart.
type chartCheck struct {
	ID     string  `json:"id"`
	Width  float64 `json:"width"`
	Height float64 `json:"height"`
	Paths  int     `json:"paths"`
	Label  string  `json:"label"`
}

const checkCharts = `Array.from(document.querySelectorAll('svg')).map(s => {
  const r = s.getBoundingClientRect();
  const label = (s.getAttribute('aria-labelledby') || '').split(/\s+/).filter(Boolean)
    .map(id => (document.getElementById(id) || {}).textContent || '').join(' ').trim();
  return {id: s.id, width: r.width, height: r.height, paths: s.querySelectorAll('path').length, label: label || s.getAttribute('aria-label') || ''};
})`

// TestReportInBrowser opens the report from a file in Debian's Chromium with
// every network request failed and recorded: each chart must render with a
// size and a text alternative, and no request may leave the page. It saves
// a screenshot as a test artefact (REPORT_ARTIFACTS, else a temporary
// directory, printed); with UPDATE_DOCS_SCREENSHOT=1 it also rewrites
// docs/images/report.png.
func TestReportInBrowser(t *testing.T) {
	bin, err := utils.Chromium()
	if err != nil {
		if utils.InCI() {
			t.Fatalf("the report's browser test needs Chromium in CI: %v", err)
		}
		t.Skipf("no browser: %v", err)
	}
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	var b bytes.Buffer
	if err := WriteHTML(&b, fixture(ptr("80"))); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(page, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), utils.ChromiumOptions(bin, filepath.Join(dir, "profile"))...)
	defer cancelAlloc()
	browser, cancel := chromedp.NewContext(alloc)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(browser, 2*time.Minute)
	defer cancelTimeout()

	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	// Offline, and every request but the report file's intercepted,
	// failed and recorded.
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{
		MatchedNetworkConditions: []*network.Conditions{{Offline: true, DownloadThroughput: -1, UploadThroughput: -1}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{{URLPattern: "*"}}}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var left []string // every request that is not the report file itself
	record := func(url string) {
		mu.Lock()
		defer mu.Unlock()
		left = append(left, url)
	}
	sent := chromedp.Events(ctx, network.RequestWillBeSent)
	paused := chromedp.Events(ctx, fetch.RequestPaused)
	go func() {
		for ev, err := range sent {
			if err != nil {
				return
			}
			if !strings.HasPrefix(ev.Request.URL, "file://") {
				record(ev.Request.URL)
			}
		}
	}()
	go func() {
		for ev, err := range paused {
			if err != nil {
				return
			}
			if strings.HasPrefix(ev.Request.URL, "file://") {
				_, _ = chromedp.Call(ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
				continue
			}
			record(ev.Request.URL)
			_, _ = chromedp.Call(ctx, fetch.FailRequest, fetch.FailRequestParams{RequestID: ev.RequestID, ErrorReason: network.ErrorReasonInternetDisconnected})
		}
	}()

	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1000, 1500), chromedp.Navigate("file://"+page)); err != nil {
		t.Fatalf("open the report: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.readyState === 'complete'`, chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		t.Fatalf("wait for the report to load: %v", err)
	}
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify(`+checkCharts+`)`))
	if err != nil {
		t.Fatalf("inspect the charts: %v", err)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	var charts []chartCheck
	if err := json.Unmarshal([]byte(raw), &charts); err != nil {
		t.Fatalf("read the charts: %v (%s)", err, raw)
	}
	// Two segments with four charts each (difference, floor, weights,
	// responses) and the score distribution.
	if len(charts) != 9 {
		t.Errorf("the browser shows %d charts, want 9", len(charts))
	}
	for _, c := range charts {
		if c.Width < 100 || c.Height < 50 || c.Paths == 0 {
			t.Errorf("chart %s renders at %.0fx%.0f with %d paths, want a drawn chart", c.ID, c.Width, c.Height, c.Paths)
		}
		if len(c.Label) < 20 {
			t.Errorf("chart %s: text alternative %q", c.ID, c.Label)
		}
	}
	mu.Lock()
	if len(left) > 0 {
		t.Errorf("requests left the page: %v", left)
	}
	mu.Unlock()

	if os.Getenv("UPDATE_DOCS_SCREENSHOT") == "1" {
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(1000, 1250)); err != nil {
			t.Fatal(err)
		}
		top, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("..", "..", "docs", "images", "report.png"), top, 0o644); err != nil { //nolint:gosec // a docs image, world-readable
			t.Fatal(err)
		}
	}

	// The recorder sees a page that does load something: the check above can fail.
	canary := filepath.Join(dir, "canary.html")
	if err := os.WriteFile(canary, []byte(`<!DOCTYPE html><img src="http://rapport.invalid/pixel.png" alt="">`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate("file://"+canary)); err != nil {
		t.Fatalf("open the canary page: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(left)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a page loading http://rapport.invalid/pixel.png was not recorded: the network check cannot fail")
		}
		time.Sleep(50 * time.Millisecond) // polling the recorder, not synchronising
	}

	out := os.Getenv("REPORT_ARTIFACTS")
	if out == "" {
		if out, err = os.MkdirTemp("", "rapport-report-"); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(out, "report.png"), shot, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes); report: %s", filepath.Join(out, "report.png"), len(shot), page)
}
