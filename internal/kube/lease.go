package kube

import (
	"context"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordinationv1ac "k8s.io/client-go/applyconfigurations/coordination/v1"
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
	last     *coordinationv1.Lease
}

// renew sets renewTime to now; it creates the Lease when missing.
func (l *leaseKeeper) renew(ctx context.Context, now time.Time) error {
	renew := metav1.NewMicroTime(now)
	if l.last != nil {
		next := l.last.DeepCopy()
		next.Spec.RenewTime = &renew
		got, err := l.c.Coordination.Leases(l.w.Namespace).Update(ctx, next, metav1.UpdateOptions{FieldManager: FieldManager})
		if err == nil {
			l.last = got
			return nil
		}
		if !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			return fmt.Errorf("renew Lease %s/%s: %w", l.w.Namespace, l.w.Name, hint(err))
		}
		l.last = nil
	}
	secs := int32(l.duration / time.Second)
	ac := coordinationv1ac.Lease(l.w.Name, l.w.Namespace).
		WithLabels(map[string]string{LabelWorkloadName: l.w.Name}).
		WithSpec(coordinationv1ac.LeaseSpec().
			WithHolderIdentity(l.holder).
			WithLeaseDurationSeconds(secs).
			WithRenewTime(renew))
	got, err := l.c.Coordination.Leases(l.w.Namespace).Apply(ctx, ac, applyOptions)
	if err != nil {
		return fmt.Errorf("apply Lease %s/%s: %w", l.w.Namespace, l.w.Name, applyHint(err, l.w.Namespace))
	}
	l.last = got
	return nil
}
