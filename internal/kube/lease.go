package kube

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// leaseKeeper renews the host's Lease the way kubelet renews its node lease
// (k8s.io/component-helpers/apimachinery/lease/controller.go): it keeps the
// last Lease it wrote and renews it with one Update carrying that
// resourceVersion, so a renewal costs one request and one etcd write, with
// no read. It falls back to a server-side apply (which creates) when the
// Lease is missing or was changed by someone else.
type leaseKeeper struct {
	c        *Client
	w        *Workload
	holder   string
	duration time.Duration
	last     *unstructured.Unstructured // a coordination.k8s.io/v1 Lease
}

// renew sets renewTime to now; it creates the Lease when missing.
func (l *leaseKeeper) renew(ctx context.Context, now time.Time) error {
	// spec.renewTime is a MicroTime: RFC 3339 with microseconds, in UTC
	// (apimachinery pkg/apis/meta/v1/micro_time.go, MarshalJSON).
	renew := now.UTC().Format(metav1.RFC3339Micro)
	leases := l.c.Dynamic.Resource(leaseGVR).Namespace(l.w.Namespace)
	if l.last != nil {
		next := l.last.DeepCopy()
		if err := unstructured.SetNestedField(next.Object, renew, "spec", "renewTime"); err != nil {
			return fmt.Errorf("renew Lease %s/%s: set spec.renewTime: %w", l.w.Namespace, l.w.Name, err)
		}
		got, err := leases.Update(ctx, next, metav1.UpdateOptions{FieldManager: FieldManager})
		if err == nil {
			l.last = got
			return nil
		}
		if !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			return fmt.Errorf("renew Lease %s/%s: %w", l.w.Namespace, l.w.Name, hint(err))
		}
		l.last = nil
	}
	ac := newObject(leaseGVR.GroupVersion().String(), "Lease", l.w.Name, l.w.Namespace, map[string]string{LabelWorkloadName: l.w.Name})
	ac.Object["spec"] = map[string]any{
		"holderIdentity":       l.holder,
		"leaseDurationSeconds": int64(l.duration / time.Second),
		"renewTime":            renew,
	}
	got, err := leases.Apply(ctx, l.w.Name, ac, applyOptions)
	if err != nil {
		return fmt.Errorf("apply Lease %s/%s: %w", l.w.Namespace, l.w.Name, applyHint(err, l.w.Namespace))
	}
	l.last = got
	return nil
}
