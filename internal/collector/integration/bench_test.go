package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"

	. "github.com/onsi/gomega"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/collector"
)

// BenchmarkCommit measures a request end to end through the commit path:
// HTTP, auth, decode, group commit and the ResponseTally write to a real API
// server (envtest), each request a keyed batch of 100 responses.
//
//	go test ./internal/collector/integration/ -run '^$' -bench Commit -benchtime 300x
//
// writes/op is tally writes per request: 1 without grouping, lower when
// concurrent requests share writes.
func BenchmarkCommit(b *testing.B) {
	if err := startEnv(); err != nil {
		b.Fatal(err)
	}
	RegisterTestingT(b)
	ctx := context.Background()
	s := newShop(ctx)
	exp := s.experiment(ctx, "bench", cxv1.MetricCSAT, cxv1.PhaseProgressing, "enterprise")
	r, err := startReplica(ctx, collector.Options{RateLimit: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = r.stop() }()
	r.waitSeen(ctx, exp, cxv1.PhaseProgressing, 1)
	body := []byte(batchBody(same(100, response{Variant: "one-page", Segment: "enterprise", Score: 4, Respondent: "c-1"})...))
	url := fmt.Sprintf("%s/v1/namespaces/%s/experiments/bench/responses", r.url, s.ns)
	var seq atomic.Int64
	post := func() error {
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+s.token)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", fmt.Sprintf("bench-%d", seq.Add(1)))
		res, err := httpClient.Do(req)
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
	report := func(b *testing.B, before float64) {
		b.ReportMetric((commits()-before)/float64(b.N), "writes/op")
		b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "responses/s")
	}

	b.Run("sequential", func(b *testing.B) {
		before := commits()
		for b.Loop() {
			if err := post(); err != nil {
				b.Fatal(err)
			}
		}
		report(b, before)
	})
	b.Run("parallel-32", func(b *testing.B) {
		before := commits()
		b.SetParallelism(16) // 16 x GOMAXPROCS (2) = 32 concurrent clients
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := post(); err != nil {
					b.Error(err)
					return
				}
			}
		})
		report(b, before)
	})
}
