package controller

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

// Elector is leader election through one coordination.k8s.io Lease, with
// client-go's algorithm (tools/leaderelection): a candidate takes the Lease
// when its holder has not renewed it for LeaseDuration as seen on the
// candidate's own clock since it last saw the record change; the leader
// renews every RetryPeriod and steps down when it cannot renew for
// RenewDeadline. It is written on the dynamic client because client-go's
// leaderelection package links the typed clientset: measured, linking it
// raises every meshexp process's RSS (bootstrap's too, one binary) from
// 18.1 MB to 31.2 MB.
type Elector struct {
	Client              dynamic.Interface
	Namespace, Name, ID string // ID: holderIdentity, the replica's peer address
	LeaseDuration       time.Duration
	RenewDeadline       time.Duration
	RetryPeriod         time.Duration
	Logger              *slog.Logger
	ReleaseOnCancel     bool

	mu         sync.Mutex
	holder     string
	observedRV string
	observedAt time.Time
}

var leaseGVR = schema.GroupVersionResource{Group: "coordination.k8s.io", Version: "v1", Resource: "leases"}

// Leader returns the holder last seen (the leader's peer address) and
// whether it is this replica.
func (e *Elector) Leader() (string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.holder, e.holder == e.ID
}

// Run campaigns until ctx ends; lead runs while this replica leads, with a
// context cancelled when it stops leading. On ctx's end a leader with
// ReleaseOnCancel releases the Lease so that another replica takes over at
// once.
func (e *Elector) Run(ctx context.Context, lead func(ctx context.Context)) {
	for ctx.Err() == nil {
		if !e.acquire(ctx) {
			continue
		}
		e.Logger.Info("became leader", "lease", e.Namespace+"/"+e.Name, "id", e.ID)
		lctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); lead(lctx) }()
		e.renew(ctx)
		cancel()
		wg.Wait()
		e.Logger.Info("stopped leading", "lease", e.Namespace+"/"+e.Name, "id", e.ID)
		if ctx.Err() != nil && e.ReleaseOnCancel {
			e.release()
		}
	}
}

func (e *Elector) acquire(ctx context.Context) bool {
	t := time.NewTicker(e.RetryPeriod)
	defer t.Stop()
	for {
		if e.try(ctx) {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
}

func (e *Elector) renew(ctx context.Context) {
	t := time.NewTicker(e.RetryPeriod)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, e.RenewDeadline)
		ok := e.try(rctx)
		cancel()
		if ok {
			last = time.Now()
		} else if _, mine := e.Leader(); !mine || time.Since(last) > e.RenewDeadline {
			return
		}
	}
}

// try takes or renews the Lease once and says whether this replica holds it.
func (e *Elector) try(ctx context.Context) bool {
	leases := e.Client.Resource(leaseGVR).Namespace(e.Namespace)
	now := metav1.NewMicroTime(time.Now())
	cur, err := leases.Get(ctx, e.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		obj := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
			"metadata": map[string]any{"name": e.Name, "namespace": e.Namespace, "labels": map[string]any{LabelManagedBy: ManagedBy}},
			"spec":     e.spec(now, now, 0),
		}}
		// Apply, not create: RBAC can then limit create to this name.
		// Distinct field managers make a concurrent second apply conflict.
		_, err = leases.Apply(ctx, e.Name, obj, metav1.ApplyOptions{FieldManager: "meshexp-elector-" + shortHash(e.ID)})
		if err == nil {
			e.observe("", e.ID)
		}
		return err == nil
	}
	if err != nil {
		e.Logger.Warn("read leader Lease", "lease", e.Namespace+"/"+e.Name, "error", err)
		return false
	}
	holder, _, _ := unstructured.NestedString(cur.Object, "spec", "holderIdentity")
	e.observe(cur.GetResourceVersion(), holder)
	e.mu.Lock()
	expired := time.Since(e.observedAt) > e.LeaseDuration
	e.mu.Unlock()
	if holder != e.ID && holder != "" && !expired {
		return false
	}
	transitions, _, _ := unstructured.NestedInt64(cur.Object, "spec", "leaseTransitions")
	acquired, _, _ := unstructured.NestedString(cur.Object, "spec", "acquireTime")
	acq := now
	if holder == e.ID {
		if t, err := time.Parse(time.RFC3339Nano, acquired); err == nil {
			acq = metav1.NewMicroTime(t)
		}
	} else {
		transitions++
	}
	cur.Object["spec"] = e.spec(acq, now, transitions)
	got, err := leases.Update(ctx, cur, metav1.UpdateOptions{FieldManager: "meshexp-controller"})
	if err != nil {
		if !apierrors.IsConflict(err) {
			e.Logger.Warn("update leader Lease", "lease", e.Namespace+"/"+e.Name, "error", err)
		}
		return false
	}
	e.observe(got.GetResourceVersion(), e.ID)
	return true
}

func (e *Elector) spec(acquire, renew metav1.MicroTime, transitions int64) map[string]any {
	return map[string]any{
		"holderIdentity":       e.ID,
		"leaseDurationSeconds": int64(e.LeaseDuration / time.Second),
		"acquireTime":          acquire.UTC().Format(metav1.RFC3339Micro),
		"renewTime":            renew.UTC().Format(metav1.RFC3339Micro),
		"leaseTransitions":     transitions,
	}
}

func (e *Elector) observe(rv, holder string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if rv == "" || rv != e.observedRV {
		e.observedRV, e.observedAt = rv, time.Now()
	}
	e.holder = holder
}

// release hands the Lease back (holder empty, expired) on a clean stop.
func (e *Elector) release() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	leases := e.Client.Resource(leaseGVR).Namespace(e.Namespace)
	cur, err := leases.Get(ctx, e.Name, metav1.GetOptions{})
	if err != nil {
		return
	}
	if h, _, _ := unstructured.NestedString(cur.Object, "spec", "holderIdentity"); h != e.ID {
		return
	}
	_ = unstructured.SetNestedField(cur.Object, "", "spec", "holderIdentity")
	_ = unstructured.SetNestedField(cur.Object, int64(1), "spec", "leaseDurationSeconds")
	if _, err := leases.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		e.Logger.Warn("release leader Lease", "error", err)
		return
	}
	e.observe("", "")
}

func shortHash(s string) string {
	var h uint32 = 2166136261
	for i := 0; i < len(s); i++ {
		h = (h ^ uint32(s[i])) * 16777619
	}
	return fmt.Sprintf("%08x", h)
}
