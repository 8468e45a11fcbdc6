package manifests

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"text/template"

	"sigs.k8s.io/yaml"

	"github.com/rapport-dev/rapport/test/utils"
)

// goreleaserConfig is the part of .goreleaser.yaml the krew manifest depends on.
type goreleaserConfig struct {
	Builds []struct {
		ID     string   `json:"id"`
		Main   string   `json:"main"`
		Binary string   `json:"binary"`
		Goos   []string `json:"goos"`
		Goarch []string `json:"goarch"`
		Ignore []struct {
			Goos, Goarch string
		} `json:"ignore"`
		Ldflags []string `json:"ldflags"`
	} `json:"builds"`
	Archives []struct {
		ID              string   `json:"id"`
		IDs             []string `json:"ids"`
		NameTemplate    string   `json:"name_template"`
		Formats         []string `json:"formats"`
		FormatOverrides []struct {
			Goos    string   `json:"goos"`
			Formats []string `json:"formats"`
		} `json:"format_overrides"`
		Files []any `json:"files"`
	} `json:"archives"`
}

// krewPlugin is a krew Plugin manifest (krew.googlecontainertools.github.com/v1alpha2).
type krewPlugin struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct{ Name string }
	Spec       struct {
		Version          string `json:"version"`
		ShortDescription string `json:"shortDescription"`
		Description      string `json:"description"`
		Caveats          string `json:"caveats"`
		Homepage         string `json:"homepage"`
		Platforms        []struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			URI    string `json:"uri"`
			Sha256 string `json:"sha256"`
			Bin    string `json:"bin"`
			Files  []struct{ From, To string }
		} `json:"platforms"`
	} `json:"spec"`
}

// TestKrewManifestMatchesReleaseArchives renders hack/krew/cx.yaml as
// krew-release-bot does for a tag and checks it against .goreleaser.yaml:
// one platform per kubectl-cx build target, each pointing at the archive
// goreleaser names for it, with the binary and files the archive holds.
func TestKrewManifestMatchesReleaseArchives(t *testing.T) {
	var gr goreleaserConfig
	if err := yaml.Unmarshal(readRepoFile(t, ".goreleaser.yaml"), &gr); err != nil {
		t.Fatal(err)
	}
	const tag = "v1.2.3"
	// addURIAndSha is krew-release-bot's: it renders the URL with the tag
	// and adds the archive's sha256.
	funcs := template.FuncMap{"addURIAndSha": func(url, tag string) (string, error) {
		u, err := render(url, nil, tag)
		return fmt.Sprintf("uri: %s\n    sha256: %s", u, strings.Repeat("0", 64)), err
	}}
	manifest, err := render(string(readRepoFile(t, "hack/krew/cx.yaml")), funcs, tag)
	if err != nil {
		t.Fatal(err)
	}
	var p krewPlugin
	if err := yaml.UnmarshalStrict([]byte(manifest), &p); err != nil {
		t.Fatalf("the rendered krew manifest: %v\n%s", err, manifest)
	}
	if p.APIVersion != "krew.googlecontainertools.github.com/v1alpha2" || p.Kind != "Plugin" || p.Metadata.Name != "cx" || p.Spec.Version != tag || p.Spec.ShortDescription == "" {
		t.Errorf("manifest header: %+v", p)
	}

	var targets []string
	binary, archiveFiles := "", []string{}
	for _, b := range gr.Builds {
		if b.ID != "kubectl-cx" {
			continue
		}
		binary = b.Binary
		if b.Main != "./cmd/kubectl-cx" || !slices.ContainsFunc(b.Ldflags, func(f string) bool { return strings.Contains(f, "internal/cli.version={{ .Tag }}") }) {
			t.Errorf("build kubectl-cx: main %s, ldflags %v (the version must be stamped)", b.Main, b.Ldflags)
		}
		for _, goos := range b.Goos {
			for _, arch := range b.Goarch {
				if !slices.ContainsFunc(b.Ignore, func(i struct{ Goos, Goarch string }) bool { return i.Goos == goos && i.Goarch == arch }) {
					targets = append(targets, goos+"/"+arch)
				}
			}
		}
	}
	var nameTemplate string
	formats := map[string]string{}
	for _, a := range gr.Archives {
		if a.ID != "kubectl-cx" {
			continue
		}
		nameTemplate = a.NameTemplate
		formats[""] = a.Formats[0]
		for _, o := range a.FormatOverrides {
			formats[o.Goos] = o.Formats[0]
		}
		for _, f := range a.Files {
			switch f := f.(type) {
			case string:
				archiveFiles = append(archiveFiles, filepath.Base(f))
			case map[string]any:
				archiveFiles = append(archiveFiles, filepath.Base(f["src"].(string)))
			}
		}
	}
	if binary == "" || nameTemplate == "" || len(targets) < 4 {
		t.Fatalf(".goreleaser.yaml: binary %q, archive name %q, targets %v", binary, nameTemplate, targets)
	}
	var platforms []string
	for _, pl := range p.Spec.Platforms {
		goos, arch := pl.Selector.MatchLabels["os"], pl.Selector.MatchLabels["arch"]
		platforms = append(platforms, goos+"/"+arch)
		name, err := render(nameTemplate, nil, tag, "Os", goos, "Arch", arch)
		if err != nil {
			t.Fatal(err)
		}
		format := formats[goos]
		if format == "" {
			format = formats[""]
		}
		if want := "https://github.com/rapport-dev/rapport/releases/download/" + tag + "/" + name + "." + format; pl.URI != want {
			t.Errorf("%s/%s: uri %s, goreleaser publishes %s", goos, arch, pl.URI, want)
		}
		bin := binary
		if goos == "windows" {
			bin += ".exe"
		}
		if pl.Bin != bin {
			t.Errorf("%s/%s: bin %s, the archive holds %s", goos, arch, pl.Bin, bin)
		}
		for _, f := range pl.Files {
			if f.From != bin && !slices.Contains(archiveFiles, f.From) {
				t.Errorf("%s/%s: file %s is not in the archive (%s + %v)", goos, arch, f.From, bin, archiveFiles)
			}
		}
	}
	slices.Sort(platforms)
	slices.Sort(targets)
	if !slices.Equal(platforms, targets) {
		t.Errorf("krew platforms %v, goreleaser builds %v", platforms, targets)
	}

	// The completion hook the archive carries runs kubectl cx __complete.
	st, err := os.Stat(filepath.Join(utils.RepoRoot(), "hack/krew/kubectl_complete-cx"))
	if err != nil || st.Mode()&0o111 == 0 || !bytes.Contains(readRepoFile(t, "hack/krew/kubectl_complete-cx"), []byte(`kubectl cx __complete "$@"`)) {
		t.Errorf("hack/krew/kubectl_complete-cx must be an executable running kubectl cx __complete: %v", err)
	}
}

// render executes a Go template with .TagName and .Tag set to tag and the
// extra key/value pairs.
func render(text string, funcs template.FuncMap, tag string, kv ...string) (string, error) {
	data := map[string]string{"TagName": tag, "Tag": tag}
	for i := 0; i+1 < len(kv); i += 2 {
		data[kv[i]] = kv[i+1]
	}
	tmpl, err := template.New("t").Funcs(funcs).Option("missingkey=error").Parse(text)
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	err = tmpl.Execute(&b, data)
	return b.String(), err
}
