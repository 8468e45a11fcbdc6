package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/history"
)

//go:embed dashboard/pages.html dashboard/style.css
var dashboardFS embed.FS

var (
	dashboardTemplates = template.Must(template.ParseFS(dashboardFS, "dashboard/pages.html"))
	dashboardCSS       = func() template.CSS {
		b, err := dashboardFS.ReadFile("dashboard/style.css")
		if err != nil {
			panic(err)
		}
		return template.CSS(b) //nolint:gosec // our own embedded stylesheet
	}()
)

// Defaults of kubectl cx dashboard.
const (
	defaultDashboardAddress = "127.0.0.1"
	defaultDashboardPort    = 3100
)

func newDashboardCommand(o *Options) *cobra.Command {
	var address string
	var port int
	var allNamespaces bool
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Serve a live web dashboard of the experiments on localhost",
		Long: `Serve a web dashboard of the CXExperiments on this machine, like
'kubectl argo rollouts dashboard': nothing is installed in the cluster; the
dashboard reads and acts with your kubeconfig's credentials and RBAC.

Pages: the experiments of the namespace (-n, else the kubeconfig context's),
or of every namespace with -A, with their phase, step and the verdict of each
variant in each segment; and each experiment's page with its hypothesis,
settings, a table and a chart of the variants of each segment (difference to
the control with its always-valid interval, against -maxDrop), rollbacks,
conditions and events. Pages update live from watches on the API server
(Server-Sent Events to the browser), and keep going when a watch restarts.

The manual actions (pause, resume, promote, abort, retry) are buttons that ask
for confirmation and show the API's answer, including RBAC refusals. They
follow the rules of 'kubectl cx pause' and the others (no --force): a button
is disabled, with the reason as its tooltip, when the phase makes the action
pointless. Each POST carries a token drawn at start, embedded in the pages.

It binds to 127.0.0.1 by default. --address binds elsewhere (0.0.0.0 for
every interface) with a warning: whoever reaches the port reads the
experiments and acts on them with your credentials.

RBAC needed: get, list and watch on cxexperiments.cx.rapport.dev; list and
watch on events.events.k8s.io (optional: without it the Events section stays
empty); patch on cxexperiments for the actions.`,
		Example: `  kubectl cx dashboard
  kubectl cx dashboard -A --port 8080
  kubectl cx dashboard -n shop --context staging`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if port < 0 || port > 65535 {
				return usageErrorf("--port must be between 0 (any free port) and 65535, got %d", port)
			}
			warning, err := checkAddress(address, cmd.Flags().Changed("address"))
			if err != nil {
				return err
			}
			if warning != "" {
				o.stderrf("%s\n", warning)
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			ns := ""
			if !allNamespaces {
				if ns, err = o.namespace(); err != nil {
					return err
				}
			}
			return o.serveDashboard(cmd.Context(), c, ns, net.JoinHostPort(address, strconv.Itoa(port)))
		},
	}
	cmd.Flags().StringVar(&address, "address", defaultDashboardAddress, "the address to listen on; anything but loopback exposes your credentials' power to the network")
	cmd.Flags().IntVar(&port, "port", defaultDashboardPort, "the port to listen on (0: any free port)")
	cmd.Flags().BoolVarP(&allNamespaces, "all-namespaces", "A", false, "show the experiments of every namespace")
	return cmd
}

// isLoopback reports whether host (a name or an IP, without port) is the
// local machine only.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// checkAddress accepts a loopback address; another one only when it was
// given explicitly with --address, and then with a warning.
func checkAddress(address string, explicit bool) (warning string, err error) {
	if address == "" {
		return "", usageErrorf("--address must not be empty; use 127.0.0.1 (the default) or the address of an interface")
	}
	if isLoopback(address) {
		return "", nil
	}
	if !explicit {
		return "", usageErrorf("refusing to listen on %s, which is not a loopback address, unless --address is given explicitly", address)
	}
	return fmt.Sprintf("Warning: listening on %s, which is not a loopback address: whoever can reach it reads your experiments and acts on them with your kubeconfig's credentials", address), nil
}

// dashboard serves the pages. It holds no cache: each page reads the API
// server, and each live page follows its own watch.
type dashboard struct {
	o         *Options
	c         client.WithWatch
	namespace string // "" for every namespace
	csrf      string
	address   string // the host the server was asked to listen on
	maxEvents int
}

func newDashboard(o *Options, c client.WithWatch, namespace, address string) (*dashboard, error) {
	token, err := randomHex(32)
	if err != nil {
		return nil, err
	}
	return &dashboard{o: o, c: c, namespace: namespace, csrf: token, address: address, maxEvents: defaultEvents}, nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("draw a random token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// serveDashboard listens on addr and serves until ctx ends.
func (o *Options) serveDashboard(ctx context.Context, c client.WithWatch, namespace, addr string) error {
	host, _, _ := net.SplitHostPort(addr)
	d, err := newDashboard(o, c, namespace, host)
	if err != nil {
		return err
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           d.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		// Live pages end with ctx (Ctrl-C), so that Shutdown does not wait for them.
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	scope := "every namespace"
	if namespace != "" {
		scope = "namespace " + namespace
	}
	if _, err := fmt.Fprintf(o.Out, "Rapport dashboard for %s at http://%s/ (Ctrl-C to stop)\n", scope, ln.Addr()); err != nil {
		_ = ln.Close()
		return err
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return err
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// routes are the dashboard's pages, behind the host check and the security
// headers.
func (d *dashboard) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", d.list)
	mux.HandleFunc("GET /live", d.listLive)
	mux.HandleFunc("GET /experiments/{namespace}/{name}", d.experiment)
	mux.HandleFunc("GET /experiments/{namespace}/{name}/live", d.experimentLive)
	mux.HandleFunc("POST /experiments/{namespace}/{name}/actions/{action}", d.act)
	return d.guard(mux)
}

// hostAllowed reports whether a request's Host header names this server:
// a loopback name, or the address it was told to listen on (any name when
// that is 0.0.0.0 or ::, which the user chose with a warning). Anything else
// is refused, so that a web page cannot reach the dashboard through a DNS
// name rebound to 127.0.0.1.
func hostAllowed(hostHeader, address string) bool {
	host := hostHeader
	if h, _, err := net.SplitHostPort(hostHeader); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	switch {
	case host == "":
		return false
	case isLoopback(host), isUnspecified(address):
		return true
	}
	return strings.EqualFold(host, strings.Trim(address, "[]"))
}

func isUnspecified(address string) bool {
	ip := net.ParseIP(strings.Trim(address, "[]"))
	return ip != nil && ip.IsUnspecified()
}

// guard refuses foreign hosts and sets the security headers: no framing, no
// sniffing, and a content security policy that allows only the page's own
// inline style and script (by nonce) and requests to the dashboard.
func (d *dashboard) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !hostAllowed(r.Host, d.address) {
			http.Error(w, "unexpected Host header "+strconv.Quote(r.Host)+": open the dashboard at the address kubectl cx dashboard printed", http.StatusMisdirectedRequest)
			return
		}
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// page is what the page templates receive.
type page struct {
	Title, Scope, CSRF, Nonce string
	CSS                       template.CSS
	View                      any
}

// render writes a page with a fresh script nonce.
func (d *dashboard) render(w http.ResponseWriter, status int, name, title string, view any) {
	nonce, err := randomHex(16)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	var b bytes.Buffer
	p := page{Title: title, Scope: d.scope(), CSRF: d.csrf, Nonce: nonce, CSS: dashboardCSS, View: view}
	if err := dashboardTemplates.ExecuteTemplate(&b, name, p); err != nil {
		http.Error(w, "render "+name+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-"+nonce+"'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes()) // the client went away: nothing to do
}

func (d *dashboard) scope() string {
	if d.namespace == "" {
		return "all namespaces"
	}
	return "namespace " + d.namespace
}

// inScope reports whether the dashboard shows namespace ns.
func (d *dashboard) inScope(ns string) bool { return d.namespace == "" || ns == d.namespace }

// renderError shows an API error as a page, with its HTTP status (403 for
// RBAC, 404 for a missing experiment).
func (d *dashboard) renderError(w http.ResponseWriter, err error) {
	d.render(w, httpStatus(err), "error", "Error", err.Error())
}

// httpStatus is the status code the dashboard answers for err: the API
// server's own for its errors, 409 for an action refused in this phase.
func httpStatus(err error) int {
	var se apierrors.APIStatus
	if errors.As(err, &se) && se.Status().Code != 0 {
		return int(se.Status().Code)
	}
	switch ExitCode(err) {
	case ExitNotFound:
		return http.StatusNotFound
	case ExitUsage:
		return http.StatusBadRequest
	case ExitError:
		var ee *exitError
		if errors.As(err, &ee) {
			return http.StatusConflict
		}
	}
	return http.StatusInternalServerError
}

func (d *dashboard) listExperiments(ctx context.Context) ([]cxv1.CXExperiment, error) {
	list := &cxv1.CXExperimentList{}
	var opts []client.ListOption
	if d.namespace != "" {
		opts = append(opts, client.InNamespace(d.namespace))
	}
	if err := d.c.List(ctx, list, opts...); err != nil {
		return nil, listError(err)
	}
	return list.Items, nil
}

func (d *dashboard) list(w http.ResponseWriter, r *http.Request) {
	items, err := d.listExperiments(r.Context())
	if err != nil {
		d.renderError(w, err)
		return
	}
	d.render(w, http.StatusOK, "list", "Experiments", buildListView(items, d.namespace, d.o.Now()))
}

// history reads the run's history for the experiment page's charts; nil
// (the page draws the current intervals) when there is none or it cannot
// be read (said on stderr, unless RBAC forbids reading it).
func (d *dashboard) history(ctx context.Context, exp *cxv1.CXExperiment) *history.History {
	h, err := readHistory(ctx, d.c, exp)
	if err != nil && !apierrors.IsForbidden(err) {
		d.o.stderrf("Warning: %v; the chart shows the current intervals only\n", err)
	}
	if h != nil && h.Run != exp.Status.Run {
		return nil
	}
	return h
}

func (d *dashboard) experiment(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	if !d.inScope(ns) {
		d.render(w, http.StatusNotFound, "error", "Not shown", fmt.Sprintf("namespace %s is not shown by this dashboard (%s); start it with -A or -n %s", ns, d.scope(), ns))
		return
	}
	exp, err := getExperiment(r.Context(), d.c, ns, name)
	if err != nil {
		d.renderError(w, err)
		return
	}
	evs, evErr := experimentEvents(r.Context(), d.c, exp)
	if evErr != nil && !apierrors.IsForbidden(evErr) {
		d.o.stderrf("Warning: cannot read the events of %s: %v\n", ref(exp), evErr)
	}
	d.render(w, http.StatusOK, "experiment", ref(exp), buildExperimentView(exp, d.history(r.Context(), exp), lastEvents(evs, d.maxEvents), d.o.Now()))
}

// actionReply is the JSON answer to an action.
type actionReply struct {
	OK      bool   `json:"ok"`
	Message string `json:"message"`
	Note    string `json:"note,omitempty"`
}

// act applies a manual action with the same code as kubectl cx pause and
// the others (without --force), after checking the CSRF token.
func (d *dashboard) act(w http.ResponseWriter, r *http.Request) {
	reply := func(status int, rep actionReply) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(rep) // the client went away: nothing to do
	}
	got := r.Header.Get("X-CSRF-Token")
	if subtle.ConstantTimeCompare([]byte(got), []byte(d.csrf)) != 1 {
		reply(http.StatusForbidden, actionReply{Message: "missing or wrong X-CSRF-Token: reload the page (the dashboard was restarted?)"})
		return
	}
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	a, ok := findAction(r.PathValue("action"))
	switch {
	case !ok:
		reply(http.StatusNotFound, actionReply{Message: fmt.Sprintf("unknown action %q: use pause, resume, promote, abort or retry", r.PathValue("action"))})
		return
	case !d.inScope(ns):
		reply(http.StatusNotFound, actionReply{Message: fmt.Sprintf("namespace %s is not shown by this dashboard (%s)", ns, d.scope())})
		return
	}
	ans, err := applyAction(r.Context(), d.c, a, ns, name, false, d.o.Now)
	if err != nil {
		d.o.stderrf("%s %s/%s: %v\n", a.name, ns, name, err)
		reply(httpStatus(err), actionReply{Message: err.Error()})
		return
	}
	d.o.stderrf("%s %s/%s: %s\n", a.name, ns, name, ans.message)
	reply(http.StatusOK, actionReply{OK: true, Message: ans.message, Note: ans.note})
}

// sseWriter writes Server-Sent Events and flushes each one.
type sseWriter struct {
	w    io.Writer
	f    http.Flusher
	last string
	err  error
}

// startSSE answers a live request with an event stream; false when the
// response cannot stream.
func startSSE(w http.ResponseWriter) (*sseWriter, bool) {
	f, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming is not supported by this connection", http.StatusInternalServerError)
		return nil, false
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	f.Flush()
	return &sseWriter{w: w, f: f}, true
}

// formatSSE formats one event: the event name (none for a plain message)
// and data lines, one per line of data, ending with a blank line.
func formatSSE(event, data string) string {
	var b strings.Builder
	if event != "" {
		b.WriteString("event: " + event + "\n")
	}
	for _, line := range strings.Split(strings.ReplaceAll(data, "\r\n", "\n"), "\n") {
		b.WriteString("data: " + line + "\n")
	}
	b.WriteString("\n")
	return b.String()
}

// failRetry is how long the browser waits before it connects again after a
// failure (the API server refused or went away), instead of its default 3s.
const failRetry = 10 * time.Second

// fail reports err to the page, which shows it and connects again after
// failRetry (EventSource does so by itself).
func (s *sseWriter) fail(err error) {
	if s.err != nil {
		return
	}
	if _, s.err = fmt.Fprintf(s.w, "retry: %d\n%s", failRetry.Milliseconds(), formatSSE("failure", err.Error())); s.err == nil {
		s.f.Flush()
	}
}

// send writes an event unless it repeats the last message.
func (s *sseWriter) send(event, data string) {
	if s.err != nil || (event == "" && data == s.last) {
		return
	}
	if event == "" {
		s.last = data
	}
	if _, s.err = io.WriteString(s.w, formatSSE(event, data)); s.err == nil {
		s.f.Flush()
	}
}

// experimentLive streams the experiment page's content each time the
// experiment or its events change, through the same watches as kubectl cx
// status --watch (restarted from the last version seen when the server ends
// them, read again after 410 Gone).
func (d *dashboard) experimentLive(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	if !d.inScope(ns) {
		http.NotFound(w, r)
		return
	}
	s, ok := startSSE(w)
	if !ok {
		return
	}
	watcher := d.o.newWatcher(d.c, ns, name, d.maxEvents)
	watcher.view = func(exp *cxv1.CXExperiment, evs []eventsv1.Event) {
		var b bytes.Buffer
		if err := dashboardTemplates.ExecuteTemplate(&b, "experiment-content", buildExperimentView(exp, d.history(r.Context(), exp), evs, d.o.Now())); err != nil {
			s.fail(err)
			return
		}
		s.send("", b.String())
	}
	err := watcher.run(r.Context())
	switch {
	case watcher.gone:
		s.send("gone", fmt.Sprintf("cxexperiment %s/%s was deleted", ns, name))
	case ExitCode(err) == ExitNotFound: // no use retrying
		s.send("gone", err.Error())
	case err != nil && r.Context().Err() == nil:
		s.fail(err)
	}
}

// listLive streams the list's content each time an experiment in scope
// changes: a watch applied to the last list, restarted from the last version
// seen when the server ends it, listed again after an error (410 Gone).
func (d *dashboard) listLive(w http.ResponseWriter, r *http.Request) {
	s, ok := startSSE(w)
	if !ok {
		return
	}
	ctx := r.Context()
	items := map[string]cxv1.CXExperiment{}
	rv := ""
	relist := func() error {
		list := &cxv1.CXExperimentList{}
		var opts []client.ListOption
		if d.namespace != "" {
			opts = append(opts, client.InNamespace(d.namespace))
		}
		if err := d.c.List(ctx, list, opts...); err != nil {
			return listError(err)
		}
		clear(items)
		for _, e := range list.Items {
			items[e.Namespace+"/"+e.Name] = e
		}
		rv = list.ResourceVersion
		return nil
	}
	show := func() {
		all := make([]cxv1.CXExperiment, 0, len(items))
		for _, e := range items {
			all = append(all, e)
		}
		var b bytes.Buffer
		if err := dashboardTemplates.ExecuteTemplate(&b, "list-content", buildListView(all, d.namespace, d.o.Now())); err != nil {
			s.fail(err)
			return
		}
		s.send("", b.String())
	}
	if err := relist(); err != nil {
		s.fail(err)
		return
	}
	show()
	for s.err == nil && ctx.Err() == nil {
		opts := []client.ListOption{&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true}}}
		if d.namespace != "" {
			opts = append(opts, client.InNamespace(d.namespace))
		}
		x, err := d.c.Watch(ctx, &cxv1.CXExperimentList{}, opts...)
		if err != nil {
			if ctx.Err() == nil {
				s.fail(err)
			}
			return
		}
		if err := d.followList(ctx, x, items, &rv, show, relist); err != nil {
			x.Stop()
			if ctx.Err() == nil {
				s.fail(err)
			}
			return
		}
		x.Stop()
	}
}

// followList applies the watch's events to items until the watch ends.
func (d *dashboard) followList(ctx context.Context, x watch.Interface, items map[string]cxv1.CXExperiment, rv *string, show func(), relist func() error) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-x.ResultChan():
			if !ok {
				return nil // the server ended the watch: start another from rv
			}
			switch ev.Type {
			case watch.Added, watch.Modified, watch.Deleted:
				e, isExp := ev.Object.(*cxv1.CXExperiment)
				if !isExp {
					continue
				}
				if ev.Type == watch.Deleted {
					delete(items, e.Namespace+"/"+e.Name)
				} else {
					items[e.Namespace+"/"+e.Name] = *e
				}
				*rv = e.ResourceVersion
				show()
			case watch.Bookmark:
				if obj, isMeta := ev.Object.(metav1.Object); isMeta {
					*rv = obj.GetResourceVersion()
				}
			case watch.Error: // typically 410 Gone: list again, watch from there
				if err := relist(); err != nil {
					return err
				}
				show()
				return nil
			}
		}
	}
}
