package collector

import (
	"encoding/json"
	"fmt"

	"k8s.io/client-go/discovery"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// TallySchemaHasDigests reports whether the API server's schema of
// ResponseTally has spec.recentKeyDigests: false when the installed CRD
// predates it (the CRDs were not upgraded before the manager, see
// docs/operations.md#upgrade). The API server then drops the field from
// every write, so the manager sets Options.KeysInList. It reads the
// published OpenAPI v3 document of cx.rapport.dev/v1alpha1, which every
// authenticated client may read.
func TallySchemaHasDigests(dc discovery.DiscoveryInterface) (bool, error) {
	paths, err := dc.OpenAPIV3().Paths()
	if err != nil {
		return false, fmt.Errorf("list the API server's OpenAPI v3 documents: %w", err)
	}
	path := "apis/" + cxv1.GroupVersion.Group + "/" + cxv1.GroupVersion.Version
	gv, ok := paths[path]
	if !ok {
		return false, fmt.Errorf("the API server publishes no OpenAPI v3 document for %s: are Rapport's CRDs installed?", cxv1.GroupVersion)
	}
	raw, err := gv.Schema("application/json")
	if err != nil {
		return false, fmt.Errorf("read the OpenAPI v3 document of %s: %w", cxv1.GroupVersion, err)
	}
	type schema struct {
		Properties map[string]schema `json:"properties"`
		GVK        []struct {
			Group, Version, Kind string
		} `json:"x-kubernetes-group-version-kind"`
	}
	var doc struct {
		Components struct {
			Schemas map[string]schema `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return false, fmt.Errorf("decode the OpenAPI v3 document of %s: %w", cxv1.GroupVersion, err)
	}
	for _, s := range doc.Components.Schemas {
		for _, k := range s.GVK {
			if k.Group == cxv1.GroupVersion.Group && k.Version == cxv1.GroupVersion.Version && k.Kind == "ResponseTally" {
				_, ok := s.Properties["spec"].Properties["recentKeyDigests"]
				return ok, nil
			}
		}
	}
	return false, fmt.Errorf("the OpenAPI v3 document of %s has no ResponseTally: is its CRD installed?", cxv1.GroupVersion)
}
