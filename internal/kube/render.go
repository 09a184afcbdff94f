package kube

import (
	"bytes"
	"fmt"
	"net/netip"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"
)

// ExternalWorkloadGVR is the resource meshexp writes. v1beta1 is the stored
// version of Linkerd's CRD (charts/linkerd-crds/templates/workload/
// external-workload.yaml) and the one whose status is a subresource.
var ExternalWorkloadGVR = schema.GroupVersionResource{
	Group:    "workload.linkerd.io",
	Version:  "v1beta1",
	Resource: "externalworkloads",
}

// ExternalWorkload is the subset of Linkerd's ExternalWorkload that meshexp
// writes, shaped as a server-side apply configuration: every field is
// optional so that an apply names only the fields meshexp owns. The Go types
// in linkerd2 (controller/gen/apis/externalworkload/v1beta1) are not
// imported to keep Linkerd's dependency graph out of meshexp.
type ExternalWorkload struct {
	APIVersion string                  `json:"apiVersion"`
	Kind       string                  `json:"kind"`
	Metadata   ObjectMeta              `json:"metadata"`
	Spec       *ExternalWorkloadSpec   `json:"spec,omitempty"`
	Status     *ExternalWorkloadStatus `json:"status,omitempty"`
}

// ObjectMeta is the part of metadata meshexp sets.
type ObjectMeta struct {
	Name            string            `json:"name"`
	Namespace       string            `json:"namespace,omitempty"`
	Labels          map[string]string `json:"labels,omitempty"`
	Annotations     map[string]string `json:"annotations,omitempty"`
	ResourceVersion string            `json:"resourceVersion,omitempty"`
}

// ExternalWorkloadSpec mirrors spec in the CRD's v1beta1 schema.
type ExternalWorkloadSpec struct {
	MeshTLS     MeshTLS      `json:"meshTLS"`
	Ports       []PortSpec   `json:"ports,omitempty"`
	WorkloadIPs []WorkloadIP `json:"workloadIPs,omitempty"`
}

// MeshTLS carries what peers verify: the certificate's identity and the SNI.
type MeshTLS struct {
	Identity   string `json:"identity"`
	ServerName string `json:"serverName"`
}

// PortSpec is one entry of spec.ports.
type PortSpec struct {
	Name     string `json:"name,omitempty"`
	Port     int32  `json:"port"`
	Protocol string `json:"protocol,omitempty"`
}

// WorkloadIP is one entry of spec.workloadIPs.
type WorkloadIP struct {
	IP string `json:"ip"`
}

// ExternalWorkloadStatus mirrors status in the CRD.
type ExternalWorkloadStatus struct {
	Conditions []Condition `json:"conditions,omitempty"`
}

// Condition is one entry of status.conditions. lastProbeTime is the time
// of the probe that caused the last write, not of every probe: writing it
// on every probe would turn each probe into an API write.
type Condition struct {
	Type               string       `json:"type"`
	Status             string       `json:"status"`
	LastProbeTime      *metav1.Time `json:"lastProbeTime,omitempty"`
	LastTransitionTime *metav1.Time `json:"lastTransitionTime,omitempty"`
	Reason             string       `json:"reason,omitempty"`
	Message            string       `json:"message,omitempty"`
}

// ConditionReady is the condition type Linkerd's destination controller
// reads to mark the workload's endpoints ready (linkerd2
// controller/api/destination/external-workload/).
const ConditionReady = "Ready"

// ReadyCondition returns the Ready condition from conds, or nil.
func ReadyCondition(conds []Condition) *Condition {
	for i := range conds {
		if conds[i].Type == ConditionReady {
			return &conds[i]
		}
	}
	return nil
}

// labels returns the ExternalWorkload's labels: the demo's three (app,
// location, workload_name) and w.Labels, which may override app and location.
func (w *Workload) labels() map[string]string {
	l := map[string]string{LabelApp: w.Name, LabelLocation: "vm"}
	for k, v := range w.Labels {
		l[k] = v
	}
	l[LabelWorkloadName] = w.Name
	return l
}

// RenderExternalWorkload returns the ExternalWorkload for w, without status:
// what Linkerd reads about the host's proxy included, the port named
// linkerd-proxy (w.ProxyInboundPort) and the opaque-ports annotation
// (w.OpaquePorts), so peers' hints match the host's proxy settings.
func RenderExternalWorkload(w *Workload) *ExternalWorkload {
	spec := &ExternalWorkloadSpec{
		MeshTLS: MeshTLS{Identity: w.Identity, ServerName: w.ServerName},
	}
	hasProxyPort := false
	for _, p := range w.Ports {
		spec.Ports = append(spec.Ports, PortSpec(p))
		hasProxyPort = hasProxyPort || p.Name == proxyPortName
	}
	if w.ProxyInboundPort != 0 && !hasProxyPort {
		spec.Ports = append(spec.Ports, PortSpec{Name: proxyPortName, Port: w.ProxyInboundPort, Protocol: ProtocolTCP})
	}
	for _, ip := range w.IPs {
		spec.WorkloadIPs = append(spec.WorkloadIPs, WorkloadIP{IP: ip.Unmap().String()})
	}
	meta := ObjectMeta{Name: w.Name, Namespace: w.Namespace, Labels: w.labels()}
	if w.OpaquePorts != "" {
		meta.Annotations = map[string]string{AnnotationOpaquePorts: w.OpaquePorts}
	}
	return &ExternalWorkload{
		APIVersion: ExternalWorkloadGVR.GroupVersion().String(),
		Kind:       "ExternalWorkload",
		Metadata:   meta,
		Spec:       spec,
	}
}

// renderStatus returns the apply configuration that sets only the Ready
// condition through the status subresource.
func renderStatus(w *Workload, c Condition) *ExternalWorkload {
	return &ExternalWorkload{
		APIVersion: ExternalWorkloadGVR.GroupVersion().String(),
		Kind:       "ExternalWorkload",
		Metadata:   ObjectMeta{Name: w.Name, Namespace: w.Namespace},
		Status:     &ExternalWorkloadStatus{Conditions: []Condition{c}},
	}
}

// RenderService returns the ClusterIP Service that selects w's
// ExternalWorkload: selector workload_name=NAME, and one port per workload
// port whose targetPort is the port's name, because Linkerd only matches
// named ports declared on the ExternalWorkload. The proxy's own port
// (linkerd-proxy) is not a service port. Its IP families follow w's
// addresses (ipFamilies): Linkerd writes EndpointSlices only in the
// Service's families, so a Service left to the cluster's default would
// never offer an IPv6 address on an IPv4-first dual-stack cluster. It is
// an apply configuration: only the fields meshexp owns.
func RenderService(w *Workload) *unstructured.Unstructured {
	spec := map[string]any{
		"type":     "ClusterIP",
		"selector": map[string]any{LabelWorkloadName: w.Name},
	}
	if policy, families := ipFamilies(w.IPs); policy != "" {
		spec["ipFamilyPolicy"] = policy
		if families != nil {
			spec["ipFamilies"] = families
		}
	}
	var ports []any
	for i, p := range w.Ports {
		if p.Name == proxyPortName {
			continue
		}
		port := p.Port
		if i == 0 && w.ServicePort != 0 {
			port = w.ServicePort
		}
		// Unstructured numbers are int64 (DeepCopyJSONValue panics on
		// int32); targetPort is the port's name, a string.
		ports = append(ports, map[string]any{
			"name":       p.Name,
			"port":       int64(port),
			"protocol":   p.Protocol,
			"targetPort": p.Name,
		})
	}
	if ports != nil {
		spec["ports"] = ports
	}
	u := newObject("v1", "Service", w.Name, w.Namespace, map[string]string{LabelWorkloadName: w.Name})
	u.Object["spec"] = spec
	return u
}

// ipFamilies is the Service's ipFamilyPolicy and ipFamilies for a
// workload's addresses. Both families: PreferDualStack, with the order left
// to the cluster, so a dual-stack cluster gives the Service both families
// (and Linkerd both slices) whichever it prefers, and a single-stack one
// still accepts it; RequireDualStack would refuse to register there. One
// family: SingleStack in that family, which an IPv6-only host needs on an
// IPv4-first cluster. No address: the cluster's default (nothing set).
func ipFamilies(ips []netip.Addr) (policy string, families []any) {
	var v4, v6 bool
	for _, ip := range ips {
		if ip.Unmap().Is4() {
			v4 = true
		} else if ip.Is6() {
			v6 = true
		}
	}
	switch {
	case v4 && v6:
		return "PreferDualStack", nil
	case v4:
		return "SingleStack", []any{"IPv4"}
	case v6:
		return "SingleStack", []any{"IPv6"}
	}
	return "", nil
}

// newObject returns an unstructured object with only its type and
// metadata set; namespace is empty for cluster-scoped objects.
func newObject(apiVersion, kind, name, namespace string, labels map[string]string) *unstructured.Unstructured {
	meta := map[string]any{"name": name}
	if namespace != "" {
		meta["namespace"] = namespace
	}
	if len(labels) > 0 {
		l := make(map[string]any, len(labels))
		for k, v := range labels {
			l[k] = v
		}
		meta["labels"] = l
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": apiVersion,
		"kind":       kind,
		"metadata":   meta,
	}}
}

// RenderYAML writes the ExternalWorkload and its Service as a YAML stream
// for users who apply manifests through GitOps instead of meshexp.
func RenderYAML(w *Workload) ([]byte, error) {
	return marshalDocs(RenderExternalWorkload(w), RenderService(w))
}

func marshalDocs(objs ...any) ([]byte, error) {
	var buf bytes.Buffer
	for _, o := range objs {
		if u, ok := o.(*unstructured.Unstructured); ok {
			o = u.Object
		}
		b, err := yaml.Marshal(o)
		if err != nil {
			return nil, fmt.Errorf("render %T as YAML: %w", o, err)
		}
		buf.WriteString("---\n")
		buf.Write(b)
	}
	return buf.Bytes(), nil
}
