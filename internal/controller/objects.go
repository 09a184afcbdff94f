package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
)

var (
	// ExternalWorkloadGVR is Linkerd's resource (see internal/kube).
	ExternalWorkloadGVR = schema.GroupVersionResource{Group: "workload.linkerd.io", Version: "v1beta1", Resource: "externalworkloads"}
	serviceGVR          = schema.GroupVersionResource{Version: "v1", Resource: "services"}
)

const (
	fieldManager   = "meshexp-controller"
	annotationHash = "meshexp.io/spec-hash"
	annotationID   = "meshexp.io/spiffe-id"
)

var apply = metav1.ApplyOptions{FieldManager: fieldManager, Force: true}

// host is what the controller knows of one registered host.
type host struct {
	key      types.NamespacedName // its ExternalWorkload
	group    string
	id       string // SPIFFE ID
	ips      []string
	ready    bool
	reason   string
	message  string
	lastSeen time.Time
}

func ownerRef(g *Group) map[string]any {
	return map[string]any{"apiVersion": GroupGVR.GroupVersion().String(), "kind": "ExternalGroup", "name": g.Name, "uid": g.UID, "controller": true}
}

// renderWorkload is the apply configuration of h's ExternalWorkload.
func renderWorkload(g *Group, h *host, clusterDomain string) *unstructured.Unstructured {
	labels := map[string]any{}
	for k, v := range g.Spec.Workload.Labels {
		labels[k] = v
	}
	labels[LabelWorkloadName], labels[LabelGroup], labels[LabelManagedBy] = h.key.Name, g.Name, ManagedBy
	annotations := map[string]any{annotationID: h.id}
	for k, v := range g.Spec.Workload.Annotations {
		annotations[k] = v
	}
	ports := []any{}
	for _, p := range g.Spec.Workload.Ports {
		proto := p.Protocol
		if proto == "" {
			proto = "TCP"
		}
		ports = append(ports, map[string]any{"name": p.Name, "port": int64(p.Port), "protocol": proto})
	}
	ips := []any{}
	for _, ip := range h.ips {
		ips = append(ips, map[string]any{"ip": ip})
	}
	spec := map[string]any{
		"meshTLS":     map[string]any{"identity": h.id, "serverName": h.key.Name + "." + clusterDomain},
		"ports":       ports,
		"workloadIPs": ips,
	}
	sum, _ := json.Marshal([]any{labels, annotations, spec, g.UID})
	hash := sha256.Sum256(sum)
	annotations[annotationHash] = hex.EncodeToString(hash[:8])
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": ExternalWorkloadGVR.GroupVersion().String(), "kind": "ExternalWorkload",
		"metadata": map[string]any{
			"name": h.key.Name, "namespace": h.key.Namespace, "labels": labels, "annotations": annotations,
			"ownerReferences": []any{ownerRef(g)},
		},
		"spec": spec,
	}}
}

// owned says whether obj is the controller's, for group g and identity id
// (id empty: any identity). The controller writes and deletes nothing else.
func owned(obj *unstructured.Unstructured, g *Group, id string) bool {
	if obj.GetLabels()[LabelManagedBy] != ManagedBy || obj.GetLabels()[LabelGroup] != g.Name {
		return false
	}
	if id != "" && obj.GetAnnotations()[annotationID] != id {
		return false
	}
	return slices.ContainsFunc(obj.GetOwnerReferences(), func(r metav1.OwnerReference) bool {
		return string(r.UID) == g.UID && r.Controller != nil && *r.Controller
	})
}

// readyCondition is the Ready condition of obj, or nil.
func readyCondition(obj *unstructured.Unstructured) map[string]any {
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == "Ready" {
			return m
		}
	}
	return nil
}

// writeReady writes the Ready condition through the status subresource.
// lastTransitionTime moves only when the status changes.
func writeReady(ctx context.Context, dyn dynamic.Interface, cur *unstructured.Unstructured, status, reason, message string, probed time.Time) error {
	now := metav1.Now().UTC().Format(time.RFC3339)
	transition := now
	if old := readyCondition(cur); old != nil && old["status"] == status {
		if t, ok := old["lastTransitionTime"].(string); ok {
			transition = t
		}
	}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": ExternalWorkloadGVR.GroupVersion().String(), "kind": "ExternalWorkload",
		"metadata": map[string]any{"name": cur.GetName(), "namespace": cur.GetNamespace()},
		"status": map[string]any{"conditions": []any{map[string]any{
			"type": "Ready", "status": status, "reason": reason, "message": message,
			"lastProbeTime": probed.UTC().Format(time.RFC3339), "lastTransitionTime": transition,
		}}},
	}}
	_, err := dyn.Resource(ExternalWorkloadGVR).Namespace(cur.GetNamespace()).ApplyStatus(ctx, cur.GetName(), obj, apply)
	if err != nil {
		return fmt.Errorf("write Ready=%s on ExternalWorkload %s/%s: %w", status, cur.GetNamespace(), cur.GetName(), err)
	}
	return nil
}

// renderService is the Service a group creates: it selects the group's
// ExternalWorkloads, one port per template port, in both IP families when
// the cluster has them (see internal/kube/LINKERD.md).
func renderService(g *Group) *unstructured.Unstructured {
	ports := []any{}
	for _, p := range g.Spec.Workload.Ports {
		proto := p.Protocol
		if proto == "" {
			proto = "TCP"
		}
		ports = append(ports, map[string]any{"name": p.Name, "port": int64(p.Port), "targetPort": p.Name, "protocol": proto})
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Service",
		"metadata": map[string]any{
			"name": g.Spec.Service.Name, "namespace": g.Namespace,
			"labels":          map[string]any{LabelManagedBy: ManagedBy, LabelGroup: g.Name},
			"ownerReferences": []any{ownerRef(g)},
		},
		"spec": map[string]any{
			"selector":       map[string]any{LabelGroup: g.Name},
			"ports":          ports,
			"ipFamilyPolicy": "PreferDualStack",
		},
	}}
}
