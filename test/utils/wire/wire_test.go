package wire

import (
	"context"
	"errors"
	"math"
	"net"
	"net/http"
	"testing"
)

func TestTolerance(t *testing.T) {
	for _, tc := range []struct {
		n    int
		p, z float64
		want float64
	}{
		{n: 1000, p: 0.3, z: 5, want: 5*math.Sqrt(0.21/1000) + 0.0005},
		{n: 400, p: 0, z: 5, want: 0.00125}, // nobody may reach a variant at weight 0
		{n: 400, p: 1, z: 5, want: 0.00125}, // everybody reaches it at weight 100
		{n: 0, p: 0.5, z: 5, want: 1},       // no request: anything goes
		{n: 100, p: 0.5, z: 3, want: 0.155}, // 3 * 0.05 + 0.005
	} {
		if got := Tolerance(tc.n, tc.p, tc.z); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("Tolerance(%d, %v, %v) = %v; want %v", tc.n, tc.p, tc.z, got, tc.want)
		}
	}
}

// TestClientAndBackend checks what the suites rely on: a backend names
// itself and echoes the x-rapport-* headers; a client sends the customer's
// marks and counts replies.
func TestClientAndBackend(t *testing.T) {
	b, err := StartBackend("checkout-v2", "127.0.0.1:0", "one-page checkout")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c := NewClient(b.Addr, 4)
	ctx := context.Background()
	r := Request{Host: "shop.test", Path: "/checkout", Header: map[string]string{HeaderVariant: "one-page", HeaderSegment: "enterprise"},
		Query: map[string]string{"plan": "gold"}, Cookies: map[string]string{"lifecycle": "new"}}
	reply, err := c.Get(ctx, r, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Reply{Backend: "checkout-v2", Addr: b.Addr, Page: "one-page checkout", Host: "shop.test", Path: "/checkout", Variant: "one-page", Segment: "enterprise"}
	if reply != want {
		t.Errorf("reply %+v; want %+v", reply, want)
	}
	s := c.Split(ctx, r, 50)
	if s.Served["checkout-v2"] != 50 || s.Share("checkout-v2") != 1 || len(s.Errors) != 0 || len(s.Replies) != 50 {
		t.Errorf("split %s; want all 50 on checkout-v2", s)
	}
	if got := r.String(); got != "GET shop.test/checkout [header x-rapport-segment=enterprise, header x-rapport-variant=one-page, query plan=gold, cookie lifecycle=new]" {
		t.Errorf("String() = %q", got)
	}
}

func TestClientReportsStatus(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no route", http.StatusNotFound)
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	_, err = NewClient(ln.Addr().String(), 1).Get(context.Background(), Request{Path: "/"}, nil)
	var se *StatusError
	if !errors.As(err, &se) || se.Code != http.StatusNotFound || se.Body != "no route" {
		t.Errorf("error %v; want HTTP 404: no route", err)
	}
}
