package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	. "github.com/onsi/gomega"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/collector"
	"github.com/rapport-dev/rapport/internal/feedback"
)

// BenchmarkFeedback measures single answers end to end through a replica
// and a real API server (envtest), each acknowledged after its durable
// commit: a Typeform webhook (signature, JSON, CEL mapping, signed
// assignment) and a browser answer at the public endpoint. 256 clients in
// flight (parallelism 128 x GOMAXPROCS 2).
//
//	go test ./internal/collector/integration/ -run '^$' -bench Feedback -benchtime 20000x
func BenchmarkFeedback(b *testing.B) {
	if err := startEnv(); err != nil {
		b.Fatal(err)
	}
	RegisterTestingT(b)
	ctx := context.Background()
	s := newShop(ctx)
	exp, key := s.feedbackExperiment(ctx, "bench", cxv1.MetricCSAT, []string{"enterprise"}, browserOn)
	r, err := startReplica(ctx, collector.Options{RateLimit: -1, PublicRateLimit: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = r.stop() }()
	r.waitSeen(ctx, exp, cxv1.PhaseProgressing, 1)
	data := map[string][]byte{feedback.KeyTypeformSecret: []byte("bench")}
	src := s.source(ctx, "typeform", cxv1.ProviderTypeform, nil, nil, data)
	r.waitSource(ctx, src)
	value := signed(key, exp, "enterprise", "control")
	tmpl := string(fixture("typeform-form_response.json", value))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1024}}
	var seq atomic.Int64
	send := func(req *http.Request) error {
		res, err := client.Do(req)
		if err != nil {
			return err
		}
		defer res.Body.Close()
		msg, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusAccepted {
			return fmt.Errorf("%d: %s", res.StatusCode, msg)
		}
		return nil
	}
	requests := map[string]func() *http.Request{
		"webhook": func() *http.Request {
			body := []byte(strings.Replace(tmpl, "01JDRAPPORT0TYPEFORM00001", fmt.Sprintf("b-%d", seq.Add(1)), 1))
			req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("%s/v1/namespaces/%s/sources/typeform/webhook", r.url, s.ns), bytes.NewReader(body))
			h, v := feedback.Sign(cxv1.ProviderTypeform, nil, data, body)
			req.Header.Set(h, v)
			req.Header.Set("Content-Type", "application/json")
			return req
		},
		"public": func() *http.Request {
			body := fmt.Sprintf(`{"assignment":%q,"respondent":"r%015d","score":4}`, value, seq.Add(1))
			req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("%s/v1/public/namespaces/%s/experiments/bench/responses", r.url, s.ns), strings.NewReader(body))
			req.Header.Set("Origin", shopOrigin)
			req.Header.Set("Content-Type", "application/json")
			return req
		},
	}
	for _, name := range []string{"webhook", "public"} {
		b.Run(name+"-256", func(b *testing.B) {
			before := commits()
			b.SetParallelism(128)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := send(requests[name]()); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "answers/s")
			b.ReportMetric((commits()-before)/float64(b.N), "writes/op")
		})
	}
}
