package controller

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Group condition types and reasons.
const (
	CondTemplateValid = "TemplateValid"
	CondServiceReady  = "ServiceReady"
)

type condition struct{ typ, status, reason, message string }

// syncGroups writes each group's status when it changed: host counts from
// the cache of owned ExternalWorkloads, the template's validity, and its
// Service (leader only).
func (c *Controller) syncGroups(ctx context.Context) {
	registered, ready := map[string]int64{}, map[string]int64{}
	for _, obj := range c.works.GetStore().List() {
		u := obj.(*unstructured.Unstructured)
		k := u.GetNamespace() + "/" + u.GetLabels()[LabelGroup]
		registered[k]++
		if rc := readyCondition(u); rc != nil && rc["status"] == "True" {
			ready[k]++
		}
	}
	for _, obj := range c.groups.GetStore().List() {
		u := obj.(*unstructured.Unstructured)
		g, err := ParseGroup(u)
		if err != nil {
			continue
		}
		k := g.Namespace + "/" + g.Name
		conds := []condition{{CondTemplateValid, "True", "Valid", "the template is valid"}}
		if err := g.ValidateTemplate(); err != nil {
			conds[0] = condition{CondTemplateValid, "False", "InvalidTemplate", err.Error()}
		} else if g.Spec.Service != nil {
			conds = append(conds, c.syncService(ctx, g))
		}
		if err := c.writeGroupStatus(ctx, u, g, registered[k], ready[k], conds); err != nil && ctx.Err() == nil {
			c.log.Warn("write ExternalGroup status", "group", k, "error", err)
		}
	}
}

// syncService applies a group's own Service once per generation, and never
// touches a Service it does not own.
func (c *Controller) syncService(ctx context.Context, g *Group) condition {
	name := g.Spec.Service.Name
	if !g.CreatesService() {
		_, err := c.dyn.Resource(serviceGVR).Namespace(g.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return condition{CondServiceReady, "False", "ServiceNotFound", fmt.Sprintf("Service %s/%s: %v; create it with a selector matching spec.workload.labels", g.Namespace, name, err)}
		}
		return condition{CondServiceReady, "True", "ServiceSelected", "the existing Service " + name + " selects the group by its own selector"}
	}
	if c.svcDone[g.UID] == g.Generation {
		return condition{CondServiceReady, "True", "ServiceApplied", "the controller owns Service " + name}
	}
	cur, err := c.dyn.Resource(serviceGVR).Namespace(g.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err == nil && !owned(cur, g, "") {
		return condition{CondServiceReady, "False", "ServiceNotOwned", fmt.Sprintf("Service %s/%s exists and is not managed by this group; the controller leaves it alone: rename spec.service.name, or set spec.service.create to false to select it", g.Namespace, name)}
	}
	_, err = c.dyn.Resource(serviceGVR).Namespace(g.Namespace).Apply(ctx, name, renderService(g), apply)
	c.m.wrote(writeService, err)
	if err != nil {
		return condition{CondServiceReady, "False", "ServiceApplyFailed", fmt.Sprintf("apply Service %s/%s: %v", g.Namespace, name, err)}
	}
	c.svcDone[g.UID] = g.Generation
	return condition{CondServiceReady, "True", "ServiceApplied", "the controller owns Service " + name}
}

func (c *Controller) writeGroupStatus(ctx context.Context, u *unstructured.Unstructured, g *Group, registered, ready int64, conds []condition) error {
	old, _, _ := unstructured.NestedMap(u.Object, "status")
	oldConds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	same := old != nil && toInt(old["registered"]) == registered && toInt(old["ready"]) == ready &&
		toInt(old["observedGeneration"]) == g.Generation && len(oldConds) == len(conds)
	now := time.Now().UTC().Format(time.RFC3339)
	out := make([]any, 0, len(conds))
	for _, cd := range conds {
		transition := now
		var prev map[string]any
		for _, oc := range oldConds {
			if m, ok := oc.(map[string]any); ok && m["type"] == cd.typ {
				prev = m
			}
		}
		if prev != nil && prev["status"] == cd.status {
			transition = fmt.Sprint(prev["lastTransitionTime"])
		}
		if prev == nil || prev["status"] != cd.status || prev["reason"] != cd.reason || prev["message"] != cd.message {
			same = false
		}
		out = append(out, map[string]any{"type": cd.typ, "status": cd.status, "reason": cd.reason, "message": cd.message,
			"observedGeneration": g.Generation, "lastTransitionTime": transition})
	}
	if same {
		return nil
	}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": GroupGVR.GroupVersion().String(), "kind": "ExternalGroup",
		"metadata": map[string]any{"name": g.Name, "namespace": g.Namespace},
		"status":   map[string]any{"registered": registered, "ready": ready, "observedGeneration": g.Generation, "conditions": out},
	}}
	_, err := c.dyn.Resource(GroupGVR).Namespace(g.Namespace).ApplyStatus(ctx, g.Name, obj, apply)
	c.m.wrote(writeGroupStatus, err)
	return err
}

func toInt(v any) int64 {
	switch n := v.(type) {
	case int64:
		return n
	case float64:
		return int64(n)
	case int:
		return int64(n)
	}
	return -1
}
