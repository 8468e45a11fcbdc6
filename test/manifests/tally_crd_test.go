package manifests

import (
	"encoding/base64"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"

	"github.com/rapport-dev/rapport/internal/collector"
)

// TestTallyKeyWindowFitsTheCRD: the collector writes up to MaxRecentKeys
// packed digests into spec.recentKeyDigests (base64 in JSON) and, while a
// CRD lacks that field, up to 1,024 entries into spec.recentKeys. A window
// larger than the CRD allows would make every commit fail with 422 once it
// is full; one much smaller would leave the schema's bound meaningless.
func TestTallyKeyWindowFitsTheCRD(t *testing.T) {
	for _, path := range []string{"config/crd/bases/cx.rapport.dev_responsetallies.yaml", chartDir + "/crds/cx.rapport.dev_responsetallies.yaml"} {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(readRepoFile(t, path), crd); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		spec := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties
		digests, list := spec["recentKeyDigests"], spec["recentKeys"]
		want := int64(base64.StdEncoding.EncodedLen(collector.MaxRecentKeys * collector.PackedDigestSize))
		if got := deref(digests.MaxLength); digests.Format != "byte" || got != want {
			t.Errorf("%s: spec.recentKeyDigests has format %q, maxLength %d; want byte and %d (%d digests of %d bytes in base64)",
				path, digests.Format, got, want, collector.MaxRecentKeys, collector.PackedDigestSize)
		}
		if got := deref(list.MaxItems); got != 1024 {
			t.Errorf("%s: spec.recentKeys has maxItems %d; want 1024, the window the collector keeps there", path, got)
		}
	}
}

// deref is *p, or -1 (none) for nil.
func deref(p *int64) int64 {
	if p == nil {
		return -1
	}
	return *p
}
