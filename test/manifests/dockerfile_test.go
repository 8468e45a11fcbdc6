package manifests

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestDockerfileCopiesWhatTheManagerImports checks the builder stage of the
// Dockerfile without a Docker engine (this machine has none): every package
// of this module that the manager (./cmd) imports lies in a folder the
// Dockerfile copies, the build command names ./cmd, and the final image
// runs as non-root. A new import from, say, test/ or hack/ fails here
// instead of in the image build.
func TestDockerfileCopiesWhatTheManagerImports(t *testing.T) {
	dockerfile := string(readRepoFile(t, "Dockerfile"))
	var copied []string
	for _, m := range regexp.MustCompile(`(?m)^COPY ([a-z0-9_-]+)/ `).FindAllStringSubmatch(dockerfile, -1) {
		copied = append(copied, m[1]+"/")
	}
	if len(copied) == 0 {
		t.Fatal("the Dockerfile copies no source folder")
	}
	for _, want := range []string{"go build", "-o manager ./cmd", "FROM gcr.io/distroless/static:nonroot", "USER 65532:65532", "CGO_ENABLED=0"} {
		if !strings.Contains(dockerfile, want) {
			t.Errorf("the Dockerfile no longer contains %q", want)
		}
	}

	// The builder image must be able to build the module's go version.
	goMod := string(readRepoFile(t, "go.mod"))
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(goMod)
	builder := regexp.MustCompile(`(?m)^FROM golang:(\d+\.\d+)`).FindStringSubmatch(dockerfile)
	if goVersion == nil || builder == nil {
		t.Fatalf("cannot read the go version of go.mod (%v) or the golang builder image (%v)", goVersion, builder)
	}
	if goVersion[1] != builder[1] {
		t.Errorf("go.mod needs go %s but the Dockerfile builds with golang:%s; keep them equal", goVersion[1], builder[1])
	}

	cmd := exec.Command("go", "list", "-deps", "-f", "{{if .Module}}{{if .Module.Main}}{{.ImportPath}}{{end}}{{end}}", "./cmd")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps ./cmd: %v\n%s", err, out)
	}
	const module = "github.com/rapport-dev/rapport/"
	pkgs := strings.Fields(string(out))
	if len(pkgs) < 3 {
		t.Fatalf("go list found only %v; expected the manager's packages", pkgs)
	}
	for _, p := range pkgs {
		rel := strings.TrimPrefix(p, module) + "/"
		if p == strings.TrimSuffix(module, "/") {
			rel = ""
		}
		ok := false
		for _, dir := range copied {
			if strings.HasPrefix(rel, dir) {
				ok = true
			}
		}
		if !ok {
			t.Errorf("the manager imports %s, but the Dockerfile copies only %v: add a COPY line", p, copied)
		}
	}
}
