// Package wire puts real traffic on the wire for Rapport's end-to-end suite,
// the time-to-safety benchmark and the demo: a conformant Gateway API proxy
// (Traefik, built from the Go module proxy by hack/traefik-bin.sh) running
// against a local control plane, the GatewayClass and Gateway it serves,
// small variant backends that answer with their name and the x-rapport-*
// headers they received, the EndpointSlices that point Services at them (no
// kubelet runs, so nothing else writes them), and customers: an HTTP client
// that sends requests through the proxy and counts which backend served them.
//
// Everything listens inside the private network namespace of
// test/utils/netns: the proxy and the backends on netns.Host (EndpointSlices
// may not name loopback addresses), the rest on 127.0.0.1.
package wire
