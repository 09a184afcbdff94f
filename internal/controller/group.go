package controller

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/meshexp/meshexp/internal/fleet"
)

// GroupGVR is the ExternalGroup resource.
var GroupGVR = schema.GroupVersionResource{Group: "meshexp.io", Version: "v1alpha1", Resource: "externalgroups"}

// Labels the controller sets on the objects it writes; a template may not
// set them.
const (
	LabelGroup        = "meshexp.io/group"
	LabelWorkloadName = "workload_name" // the demo's, as `meshexp workload` sets it
)

// Group is an ExternalGroup as the controller reads it.
type Group struct {
	Namespace, Name, UID string
	Generation           int64
	Spec                 GroupSpec
}

// GroupSpec mirrors the CRD's spec (see crd.yaml for each field's meaning).
type GroupSpec struct {
	Workload struct {
		Labels      map[string]string `json:"labels,omitempty"`
		Annotations map[string]string `json:"annotations,omitempty"`
		Ports       []GroupPort       `json:"ports"`
	} `json:"workload"`
	Service *struct {
		Name   string `json:"name"`
		Create *bool  `json:"create,omitempty"`
	} `json:"service,omitempty"`
	Identities struct {
		PathPrefix string   `json:"pathPrefix,omitempty"`
		IDs        []string `json:"ids,omitempty"`
	} `json:"identities"`
	Probe    fleet.Probe `json:"probe"`
	DeadHost struct {
		NotReadyAfterSeconds int64 `json:"notReadyAfterSeconds"`
		DeleteAfterSeconds   int64 `json:"deleteAfterSeconds"`
	} `json:"deadHost"`
}

// GroupPort is one port of the template.
type GroupPort struct {
	Name     string `json:"name"`
	Port     int32  `json:"port"`
	Protocol string `json:"protocol,omitempty"`
}

// Defaults for a group the API server did not default (an old object);
// the CRD carries the same values.
const (
	DefaultNotReadyAfter = 15 * time.Second
	DefaultDeleteAfter   = 10 * time.Minute
)

// ParseGroup reads an ExternalGroup.
func ParseGroup(u *unstructured.Unstructured) (*Group, error) {
	g := &Group{Namespace: u.GetNamespace(), Name: u.GetName(), UID: string(u.GetUID()), Generation: u.GetGeneration()}
	spec, _, _ := unstructured.NestedMap(u.Object, "spec")
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("read ExternalGroup %s/%s: %w", g.Namespace, g.Name, err)
	}
	if err := json.Unmarshal(b, &g.Spec); err != nil {
		return nil, fmt.Errorf("read ExternalGroup %s/%s spec: %w", g.Namespace, g.Name, err)
	}
	return g, nil
}

// NotReadyAfter and DeleteAfter are the dead-host policy.
func (g *Group) NotReadyAfter() time.Duration {
	if s := g.Spec.DeadHost.NotReadyAfterSeconds; s > 0 {
		return time.Duration(s) * time.Second
	}
	return DefaultNotReadyAfter
}

// DeleteAfter is how long after its last report a silent host's
// ExternalWorkload is deleted.
func (g *Group) DeleteAfter() time.Duration {
	if s := g.Spec.DeadHost.DeleteAfterSeconds; s > 0 {
		return time.Duration(s) * time.Second
	}
	return DefaultDeleteAfter
}

// CreatesService says whether the controller owns the group's Service.
func (g *Group) CreatesService() bool {
	return g.Spec.Service != nil && (g.Spec.Service.Create == nil || *g.Spec.Service.Create)
}

// ValidateTemplate finds what the schema cannot: label and annotation keys
// and values, and labels the controller reserves. The result goes into the
// group's TemplateValid condition, in the words of the spec's fields.
func (g *Group) ValidateTemplate() error {
	var errs []error
	for k, v := range g.Spec.Workload.Labels {
		if k == LabelGroup || k == LabelManagedBy || k == LabelWorkloadName {
			errs = append(errs, fmt.Errorf("spec.workload.labels %q: set by the controller; remove it", k))
			continue
		}
		if msgs := validation.IsQualifiedName(k); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("spec.workload.labels key %q: %s", k, strings.Join(msgs, "; ")))
		}
		if msgs := validation.IsValidLabelValue(v); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("spec.workload.labels %q value %q: %s", k, v, strings.Join(msgs, "; ")))
		}
	}
	for k := range g.Spec.Workload.Annotations {
		if msgs := validation.IsQualifiedName(strings.ToLower(k)); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("spec.workload.annotations key %q: %s", k, strings.Join(msgs, "; ")))
		}
	}
	if len(g.Spec.Workload.Ports) == 0 {
		errs = append(errs, errors.New("spec.workload.ports: none; give at least one"))
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(errs...)
}

// Admit says whether id may join g and returns the name of its
// ExternalWorkload: the last segment of the ID's path. The trust domain was
// checked by the TLS handshake.
func (g *Group) Admit(id spiffeid.ID) (string, error) {
	path := id.Path()
	allowed := slices.Contains(g.Spec.Identities.IDs, id.String())
	if p := g.Spec.Identities.PathPrefix; p != "" && strings.HasPrefix(path, p) && len(path) > len(p) {
		allowed = true
	}
	if !allowed {
		how := make([]string, 0, 2)
		if p := g.Spec.Identities.PathPrefix; p != "" {
			how = append(how, fmt.Sprintf("path prefix %q", p))
		}
		if n := len(g.Spec.Identities.IDs); n > 0 {
			how = append(how, fmt.Sprintf("%d listed ID(s)", n))
		}
		return "", fmt.Errorf("SPIFFE ID %s may not join ExternalGroup %s/%s (it admits %s); add it to spec.identities of the group or use another group",
			id, g.Namespace, g.Name, strings.Join(how, " and "))
	}
	name := path[strings.LastIndex(path, "/")+1:]
	if msgs := validation.IsDNS1035Label(name); len(msgs) > 0 {
		return "", fmt.Errorf("SPIFFE ID %s: its last path segment %q names the ExternalWorkload and is not a valid name: %s", id, name, strings.Join(msgs, "; "))
	}
	return name, nil
}
