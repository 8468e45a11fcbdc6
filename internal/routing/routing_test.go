package routing

import (
	"context"
	"errors"
	"testing"
)

func TestWriteGuard(t *testing.T) {
	ctx := context.Background()
	if err := (Plan{}).WriteGuard()(ctx); err != nil {
		t.Fatalf("a plan without BeforeWrite: %v", err)
	}
	calls := 0
	p := Plan{BeforeWrite: func(context.Context) error { calls++; return nil }}
	guard := p.WriteGuard()
	for range 3 {
		if err := guard(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if calls != 1 {
		t.Fatalf("BeforeWrite ran %d times for one Apply; want 1", calls)
	}
	if _ = p.WriteGuard()(ctx); calls != 2 {
		t.Fatalf("a new Apply (a new guard) must run BeforeWrite again; ran %d times in all", calls)
	}
	refused := errors.New("conflict")
	if err := (Plan{BeforeWrite: func(context.Context) error { return refused }}).WriteGuard()(ctx); !errors.Is(err, refused) {
		t.Fatalf("the error of BeforeWrite must stop the write; got %v", err)
	}
}
