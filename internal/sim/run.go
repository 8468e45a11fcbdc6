package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/routing"
)

// Options configures a run.
type Options struct {
	// Client reads the experiment and the live split.
	Client client.Client
	// Namespace and Experiment name the experiment.
	Namespace, Experiment string
	// CollectorURL is the collector's base URL, e.g. http://127.0.0.1:8082.
	CollectorURL string
	// Token is the feedback token of the namespace.
	Token string
	// Scenario describes the customers.
	Scenario *Scenario
	// Concurrency bounds the requests in flight (default 4).
	Concurrency int
	// Duration bounds the run; 0 runs until the experiment ends.
	Duration time.Duration
	// WeightsEvery is how often the live split is read (default 250ms).
	WeightsEvery time.Duration
	// OnBatch, if set, is called after each batch is answered (from several goroutines).
	OnBatch func(BatchResult)
	// HTTPClient posts the batches (default: a client with a 30s timeout).
	HTTPClient *http.Client
}

// BatchResult is one collector request.
type BatchResult struct {
	Answers []Answer
	Code    int
	// SentAt and AckedAt time the request; AckedAt-SentAt is the
	// acknowledgement latency (a 202 means durably counted).
	SentAt, AckedAt time.Time
	Err             error
}

// Stats sums up a run.
type Stats struct {
	Batches, Sent, Accepted int64
	// Codes counts answers by HTTP status (0: transport error).
	Codes map[int]int64
	// AckLatencies of accepted batches.
	AckLatencies []time.Duration
	Elapsed      time.Duration
}

// Percentile returns the p-quantile (0..1) of the acknowledgement latencies.
func (s Stats) Percentile(p float64) time.Duration {
	if len(s.AckLatencies) == 0 {
		return 0
	}
	l := append([]time.Duration(nil), s.AckLatencies...)
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	i := int(p * float64(len(l)-1))
	return l[i]
}

// ErrExperimentEnded is returned when the collector refuses feedback
// because the experiment is no longer running.
var ErrExperimentEnded = errors.New("the experiment is no longer running")

// ScaleOf reads an experiment's score scale and control variant.
func ScaleOf(exp *cxv1.CXExperiment) (Scale, string, error) {
	set, err := exp.Spec.Satisfaction.Settings()
	if err != nil {
		return Scale{}, "", err
	}
	control := ""
	if c := exp.Spec.ControlVariant(); c != nil {
		control = c.Name
	}
	return Scale{NPS: set.Metric == cxv1.MetricNPS, Min: set.ScoreMin, Max: set.ScoreMax, SatisfiedAtOrAbove: set.SatisfiedAtOrAbove}, control, nil
}

// Weights reads the split Rapport applied: Weights[segment][variant].
func Weights(ctx context.Context, c client.Client, exp *cxv1.CXExperiment) (map[string]map[string]int32, error) {
	// GatewayAPI: the simulator only reads routes; without the CRD the read
	// fails and says so.
	r, err := routing.New(exp, routing.Deps{Client: c, Scheme: c.Scheme(), GatewayAPI: true})
	if err != nil {
		return nil, err
	}
	return r.Weights(ctx, exp)
}

// LiveSplit reads the split Rapport applied to an experiment and keeps the
// last one two reads in a row returned (see Confirmer). Refresh is called
// from one goroutine; Last from any.
type LiveSplit struct {
	c       client.Client
	key     types.NamespacedName
	confirm Confirmer
	last    atomic.Pointer[Split]
}

// NewLiveSplit reads the split of experiment key with c.
func NewLiveSplit(c client.Client, key types.NamespacedName) *LiveSplit {
	return &LiveSplit{c: c, key: key}
}

// Refresh reads the experiment and its route once and returns the weights
// read; they become Last once the read before returned them too.
func (l *LiveSplit) Refresh(ctx context.Context) (map[string]map[string]int32, error) {
	at := time.Now()
	exp := &cxv1.CXExperiment{}
	if err := l.c.Get(ctx, l.key, exp); err != nil {
		return nil, err
	}
	w, err := Weights(ctx, l.c, exp)
	if err != nil {
		return nil, err
	}
	if sp, ok := l.confirm.Observe(at, w); ok {
		l.last.Store(&sp)
	}
	return w, nil
}

// Last is the last confirmed split, nil before the first.
func (l *LiveSplit) Last() *Split { return l.last.Load() }

// Run simulates customers until ctx ends, Duration passes, or the
// experiment stops taking feedback.
func Run(ctx context.Context, o Options) (Stats, error) {
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	if o.WeightsEvery <= 0 {
		o.WeightsEvery = 250 * time.Millisecond
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if err := o.Scenario.Validate(); err != nil {
		return Stats{}, err
	}
	if o.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Duration)
		defer cancel()
	}
	exp := &cxv1.CXExperiment{}
	if err := o.Client.Get(ctx, types.NamespacedName{Namespace: o.Namespace, Name: o.Experiment}, exp); err != nil {
		return Stats{}, fmt.Errorf("read experiment %s/%s: %w", o.Namespace, o.Experiment, err)
	}
	scale, control, err := ScaleOf(exp)
	if err != nil {
		return Stats{}, err
	}
	drawer := NewDrawer(o.Scenario, scale, control)

	// The live split, and a moment it was served: the answers drawn with it
	// carry that time as `at`, when their customers were served, so that the
	// collector counts them in the allocation epoch of those weights even
	// when they arrive after the next change.
	live := NewLiveSplit(o.Client, types.NamespacedName{Namespace: o.Namespace, Name: o.Experiment})
	for live.Last() == nil {
		if _, err := live.Refresh(ctx); err != nil {
			return Stats{}, fmt.Errorf("read the live split: %w", err)
		}
	}

	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	var (
		mu    sync.Mutex
		stats = Stats{Codes: map[int]int64{}}
		wg    sync.WaitGroup
		slots = make(chan struct{}, o.Concurrency)
	)
	start := time.Now()
	record := func(res BatchResult) {
		mu.Lock()
		stats.Batches++
		stats.Sent += int64(len(res.Answers))
		stats.Codes[res.Code] += int64(len(res.Answers))
		if res.Code == http.StatusAccepted {
			stats.Accepted += int64(len(res.Answers))
			stats.AckLatencies = append(stats.AckLatencies, res.AckedAt.Sub(res.SentAt))
		}
		mu.Unlock()
		if o.OnBatch != nil {
			o.OnBatch(res)
		}
		if res.Code == http.StatusConflict || res.Code == http.StatusNotFound {
			stop(ErrExperimentEnded)
		}
	}

	go func() { // the live split
		t := time.NewTicker(o.WeightsEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				_, _ = live.Refresh(ctx) // keep the last split on a transient error
			}
		}
	}()

	pace := time.NewTicker(o.Scenario.interval())
	defer pace.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-pace.C:
		}
		batch := make([]Answer, o.Scenario.Batch)
		sp := live.Last()
		for i := range batch {
			batch[i] = drawer.Draw(sp.Weights)
			batch[i].At = sp.At
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			break loop
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			record(post(ctx, o, batch))
		}()
	}
	wg.Wait()
	stats.Elapsed = time.Since(start)
	return stats, nil
}

type wireResponse struct {
	Variant string `json:"variant"`
	Segment string `json:"segment,omitempty"`
	Score   int    `json:"score"`
	Channel string `json:"channel,omitempty"`
	At      string `json:"at,omitempty"`
}

// Body is the collector's request body for a batch of answers, each with
// channel (none when empty) and, when known, the time its customer was
// served as `at`.
func Body(batch []Answer, channel string) []byte {
	rs := make([]wireResponse, len(batch))
	for i, a := range batch {
		rs[i] = wireResponse{Variant: a.Variant, Segment: a.Segment, Score: a.Score, Channel: channel}
		if !a.At.IsZero() {
			rs[i].At = a.At.UTC().Format(time.RFC3339Nano)
		}
	}
	body, _ := json.Marshal(map[string]any{"responses": rs})
	return body
}

// post sends one batch to the collector.
func post(ctx context.Context, o Options, batch []Answer) BatchResult {
	res := BatchResult{Answers: batch, SentAt: time.Now()}
	body := Body(batch, "rapport-sim")
	url := fmt.Sprintf("%s/v1/namespaces/%s/experiments/%s/responses", o.CollectorURL, o.Namespace, o.Experiment)
	req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		res.Err = err
		return res
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+o.Token)
	resp, err := o.HTTPClient.Do(req)
	res.AckedAt = time.Now()
	if err != nil {
		res.Err = err
		return res
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	res.Code = resp.StatusCode
	return res
}
