package controller

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"

	"github.com/meshexp/meshexp/internal/fleet"
)

// Phases of a host as the sweep sees it.
const (
	phaseLive   = iota
	phaseSilent // no report for the group's notReadyAfter: Ready=False
	phaseGone   // no report for deleteAfter: deleted
)

// Reasons the controller writes into Ready.
const (
	ReasonHostReady    = "HostReady"
	ReasonHostNotReady = "HostNotReady"
	ReasonSilent       = "HostStoppedReporting"
)

// hub is the leader's table of hosts, fed by the streams it holds and by
// the streams other replicas relay. Only the leader writes, through its
// work queue, and only on transitions. A follower keeps nothing: it only
// relays, and a new leader starts from the objects, not from what it heard
// while following (so a follower's memory does not grow with every host
// it ever served).
type hub struct {
	mu      sync.Mutex
	leading bool
	hosts   map[types.NamespacedName]*entry
	queue   workqueue.TypedRateLimitingInterface[types.NamespacedName] // nil until the table is adopted
}

type entry struct {
	host
	phase int
	heard bool // reported since this replica took over (not only adopted)
}

func newHub() *hub { return &hub{hosts: map[types.NamespacedName]*entry{}} }

// startLeading empties the table and keeps reports from now on; adopt
// then fills it from the objects and startQueue starts the writes.
func (h *hub) startLeading() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.leading, h.hosts = true, map[types.NamespacedName]*entry{}
}

// startQueue queues every host known so far and every later change on q.
func (h *hub) startQueue(q workqueue.TypedRateLimitingInterface[types.NamespacedName]) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.queue = q
	for key := range h.hosts {
		q.Add(key)
	}
}

// stopLeading forgets every host at once: a follower keeps no reports.
func (h *hub) stopLeading() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.leading, h.queue, h.hosts = false, nil, map[types.NamespacedName]*entry{}
}

// report records a host's report and queues a write when it changes what
// the ExternalWorkload should say. A follower drops it (it relays it to
// the leader).
func (h *hub) report(key types.NamespacedName, group, id string, r *fleet.Report, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.leading {
		return
	}
	e, ok := h.hosts[key]
	if !ok {
		e = &entry{}
		h.hosts[key] = e
	}
	changed := !ok || e.phase != phaseLive || e.ready != r.Ready || e.reason != r.Reason || e.message != r.Message ||
		e.group != group || e.id != id || !slices.Equal(e.ips, r.IPs)
	e.host = host{key: key, group: group, id: id, ips: slices.Clone(r.IPs), ready: r.Ready, reason: r.Reason, message: r.Message, lastSeen: now}
	e.phase, e.heard = phaseLive, true
	if changed && h.queue != nil {
		h.queue.Add(key)
	}
}

func (h *hub) len() int {
	n, _ := h.counts()
	return n
}

// counts are the hosts in the table and those heard from since the
// takeover (a new leader has caught up when they are equal).
func (h *hub) counts() (tracked, heard int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range h.hosts {
		if e.heard {
			heard++
		}
	}
	return len(h.hosts), heard
}

func (h *hub) get(key types.NamespacedName) (host, int, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e, ok := h.hosts[key]
	if !ok {
		return host{}, 0, false
	}
	return e.host, e.phase, true
}

// forget drops key unless a report came after seen.
func (h *hub) forget(key types.NamespacedName, seen time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e, ok := h.hosts[key]; ok && !e.lastSeen.After(seen) {
		delete(h.hosts, key)
	}
}

// adopt adds the hosts of owned ExternalWorkloads the hub has no report
// for, as a new leader does: a host's grace starts at the takeover (so a
// failover never flaps a healthy host), except for one already written as
// silent, whose clock goes on from its transition.
func (h *hub) adopt(obj *unstructured.Unstructured, g *Group, now time.Time) {
	key := types.NamespacedName{Namespace: obj.GetNamespace(), Name: obj.GetName()}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.hosts[key]; ok {
		return
	}
	e := &entry{host: host{key: key, group: g.Name, id: obj.GetAnnotations()[annotationID], lastSeen: now}}
	ips, _, _ := unstructured.NestedSlice(obj.Object, "spec", "workloadIPs")
	for _, ip := range ips {
		if m, ok := ip.(map[string]any); ok {
			s, _ := m["ip"].(string)
			e.ips = append(e.ips, s)
		}
	}
	if c := readyCondition(obj); c != nil {
		e.ready = c["status"] == "True"
		e.reason, _ = c["reason"].(string)
		e.message, _ = c["message"].(string)
		if e.reason == ReasonSilent {
			if t, err := time.Parse(time.RFC3339, fmt.Sprint(c["lastTransitionTime"])); err == nil {
				e.lastSeen, e.phase = t.Add(-g.NotReadyAfter()), phaseSilent
				e.ready, e.reason, e.message = false, ReasonHostNotReady, ""
			}
		}
	}
	h.hosts[key] = e
}

// sweep moves silent hosts to their next phase and queues the writes.
func (h *hub) sweep(now time.Time, groupOf func(ns, name string) *Group) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for key, e := range h.hosts {
		g := groupOf(key.Namespace, e.group)
		if g == nil {
			continue
		}
		phase := phaseLive
		switch silent := now.Sub(e.lastSeen); {
		case silent >= g.DeleteAfter():
			phase = phaseGone
		case silent >= g.NotReadyAfter():
			phase = phaseSilent
		}
		if phase != e.phase {
			e.phase = phase
			if h.queue != nil {
				h.queue.Add(key)
			}
		}
	}
}

// desired is the Ready condition for h in phase.
func desired(h host, phase int, g *Group) (status, reason, message string) {
	if phase >= phaseSilent {
		return "False", ReasonSilent, fmt.Sprintf("the host has not reported to the controller since %s (ExternalGroup %s spec.deadHost.notReadyAfterSeconds is %d)",
			h.lastSeen.UTC().Format(time.RFC3339), g.Name, int64(g.NotReadyAfter()/time.Second))
	}
	status, reason, message = "False", h.reason, h.message
	if h.ready {
		status = "True"
	}
	if reason == "" {
		reason = map[bool]string{true: ReasonHostReady, false: ReasonHostNotReady}[h.ready]
	}
	return status, reason, message
}

// sync makes key's ExternalWorkload say what the hub knows (leader only).
func (c *Controller) sync(ctx context.Context, key types.NamespacedName) error {
	h, phase, ok := c.hub.get(key)
	if !ok {
		return nil
	}
	g := c.group(key.Namespace, h.group)
	if g == nil {
		return nil // the group is gone; its objects are left to the garbage collector
	}
	cur := c.workload(key)
	if cur != nil && !owned(cur, g, h.id) {
		return nil
	}
	status, reason, message := desired(h, phase, g)
	if phase == phaseGone {
		if cur == nil {
			c.hub.forget(key, h.lastSeen)
			return nil
		}
		// Withdraw readiness first: Linkerd keeps offering a workload
		// deleted while Ready=True (internal/kube/LINKERD.md).
		if old := readyCondition(cur); old == nil || old["status"] != "False" {
			err := writeReady(ctx, c.dyn, cur, "False", ReasonSilent, message, h.lastSeen)
			c.m.wrote(writeStatus, err)
			if err != nil {
				return err
			}
		}
		uid := cur.GetUID()
		err := c.dyn.Resource(ExternalWorkloadGVR).Namespace(key.Namespace).Delete(ctx, key.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
		if apierrors.IsNotFound(err) {
			err = nil
		}
		c.m.wrote(writeDelete, err)
		if err != nil {
			return fmt.Errorf("delete ExternalWorkload %s: %w", key, err)
		}
		c.log.Info("deleted the ExternalWorkload of a host that stopped reporting", "externalworkload", key.String(), "identity", h.id, "last_report", h.lastSeen)
		c.hub.forget(key, h.lastSeen)
		return nil
	}
	want := renderWorkload(g, &h, c.o.ClusterDomain)
	if cur == nil || cur.GetAnnotations()[annotationHash] != want.GetAnnotations()[annotationHash] {
		if cur == nil {
			// Not in the cache of owned objects: never take over one
			// somebody else made.
			live, err := c.dyn.Resource(ExternalWorkloadGVR).Namespace(key.Namespace).Get(ctx, key.Name, metav1.GetOptions{})
			if err == nil && !owned(live, g, h.id) {
				return nil
			}
		}
		got, err := c.dyn.Resource(ExternalWorkloadGVR).Namespace(key.Namespace).Apply(ctx, key.Name, want, apply)
		c.m.wrote(map[bool]string{true: writeCreate, false: writeUpdate}[cur == nil], err)
		if err != nil {
			return fmt.Errorf("apply ExternalWorkload %s: %w", key, err)
		}
		cur = got
	}
	if old := readyCondition(cur); old != nil && old["status"] == status && old["reason"] == reason &&
		(fmt.Sprint(old["message"]) == message || reason == ReasonSilent) {
		return nil // a silent host adopted by a new leader keeps its message
	}
	err := writeReady(ctx, c.dyn, cur, status, reason, message, h.lastSeen)
	c.m.wrote(writeStatus, err)
	if err != nil {
		return err
	}
	c.log.Info("wrote Ready", "externalworkload", key.String(), "status", status, "reason", reason)
	return nil
}
