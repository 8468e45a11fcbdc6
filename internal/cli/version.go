package cli

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// Set at link time by the release build (goreleaser):
//
//	-X github.com/rapport-dev/rapport/internal/cli.version=v0.2.0
//	-X github.com/rapport-dev/rapport/internal/cli.commit=<sha>
//	-X github.com/rapport-dev/rapport/internal/cli.date=<RFC 3339>
//
// A `go install ...@v0.2.0` build reads them from the module's build info.
var (
	version = ""
	commit  = ""
	date    = ""
)

// VersionInfo is what `kubectl cx version` reports.
type VersionInfo struct {
	ClientVersion ClientVersion  `json:"clientVersion"`
	ServerVersion *ServerVersion `json:"serverVersion,omitempty"`
}

// ClientVersion describes this kubectl-cx binary.
type ClientVersion struct {
	Version   string `json:"version"`
	Commit    string `json:"commit,omitempty"`
	BuildDate string `json:"buildDate,omitempty"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

// ServerVersion describes the cluster.
type ServerVersion struct {
	Kubernetes string `json:"kubernetes"`
	// RapportAPI is the API group version of Rapport the cluster serves
	// ("" when Rapport's CRDs are not installed).
	RapportAPI string `json:"rapportAPI"`
}

// clientVersion reads the link-time variables, else the build info.
func clientVersion() ClientVersion {
	v := ClientVersion{Version: version, Commit: commit, BuildDate: date, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision" && v.Commit == "":
				v.Commit = s.Value
			case s.Key == "vcs.time" && v.BuildDate == "":
				v.BuildDate = s.Value
			}
		}
	}
	if v.Version == "" {
		v.Version = "devel"
	}
	return v
}

func newVersionCommand(o *Options) *cobra.Command {
	var clientOnly bool
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version of kubectl-cx and of the cluster's Kubernetes and Rapport API",
		Long: `Print kubectl-cx's version, commit, build date, Go version and platform,
then the cluster's Kubernetes version and whether it serves Rapport's API
(cx.rapport.dev/v1alpha1). --client skips the cluster. -o json|yaml print a
VersionInfo document for scripts.`,
		Example: `  kubectl cx version
  kubectl cx version --client -o json`,
		Args: noArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			if err := outputFlag(output, "", "json", "yaml"); err != nil {
				return err
			}
			info := VersionInfo{ClientVersion: clientVersion()}
			var serverErr error
			if !clientOnly {
				info.ServerVersion, serverErr = o.serverVersion()
			}
			if err := printVersion(o, info, output); err != nil {
				return err
			}
			if serverErr != nil {
				return fmt.Errorf("cannot read the server's version: %w", serverErr)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&clientOnly, "client", false, "print the client's version only (no cluster needed)")
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json or yaml (default: text)")
	return cmd
}

// serverVersion asks the cluster for its version and whether it serves Rapport.
func (o *Options) serverVersion() (*ServerVersion, error) {
	dc, err := o.ConfigFlags.ToDiscoveryClient()
	if err != nil {
		return nil, err
	}
	v, err := dc.ServerVersion()
	if err != nil {
		return nil, err
	}
	sv := &ServerVersion{Kubernetes: v.GitVersion}
	if _, err := dc.ServerResourcesForGroupVersion(cxv1.GroupVersion.String()); err == nil {
		sv.RapportAPI = cxv1.GroupVersion.String()
	}
	return sv, nil
}

func printVersion(o *Options, info VersionInfo, output string) error {
	switch output {
	case "json":
		b, err := json.MarshalIndent(info, "", "    ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(o.Out, "%s\n", b)
		return err
	case "yaml":
		b, err := yaml.Marshal(info)
		if err != nil {
			return err
		}
		_, err = o.Out.Write(b)
		return err
	}
	c := info.ClientVersion
	p := &printer{w: o.Out}
	p.printf("Client Version: %s\n", c.Version)
	if c.Commit != "" {
		p.printf("  commit %s, built %s, %s, %s\n", c.Commit, orDash(c.BuildDate), c.GoVersion, c.Platform)
	} else {
		p.printf("  %s, %s\n", c.GoVersion, c.Platform)
	}
	if s := info.ServerVersion; s != nil {
		p.printf("Kubernetes Version: %s\n", s.Kubernetes)
		if s.RapportAPI != "" {
			p.printf("Rapport API: %s served\n", s.RapportAPI)
		} else {
			p.printf("Rapport API: not served (is Rapport installed? see docs/operations.md)\n")
		}
	}
	return p.err
}
