package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// applyOptions force ownership: meshexp is the authority for the fields it
// sets on its own host's objects, and a hand edit must not wedge
// registration on a conflict.
var applyOptions = metav1.ApplyOptions{FieldManager: FieldManager, Force: true}

// ApplyWorkload server-side applies w's ExternalWorkload and returns it as
// stored, status included. An apply that changes nothing is not written
// (the resourceVersion stays), so repeating it is cheap.
func (c *Client) ApplyWorkload(ctx context.Context, w *Workload) (*ExternalWorkload, error) {
	u, err := toUnstructured(RenderExternalWorkload(w))
	if err != nil {
		return nil, err
	}
	got, err := c.Dynamic.Resource(ExternalWorkloadGVR).Namespace(w.Namespace).Apply(ctx, w.Name, u, applyOptions)
	if err != nil {
		return nil, fmt.Errorf("apply ExternalWorkload %s/%s: %w", w.Namespace, w.Name, applyHint(err, w.Namespace))
	}
	return fromUnstructured(got)
}

// ApplyService server-side applies w's Service.
func (c *Client) ApplyService(ctx context.Context, w *Workload) error {
	if _, err := c.Dynamic.Resource(serviceGVR).Namespace(w.Namespace).Apply(ctx, w.Name, RenderService(w), applyOptions); err != nil {
		return fmt.Errorf("apply Service %s/%s: %w", w.Namespace, w.Name, applyHint(err, w.Namespace))
	}
	return nil
}

// GetWorkload reads w's ExternalWorkload.
func (c *Client) GetWorkload(ctx context.Context, w *Workload) (*ExternalWorkload, error) {
	got, err := c.Dynamic.Resource(ExternalWorkloadGVR).Namespace(w.Namespace).Get(ctx, w.Name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("get ExternalWorkload %s/%s: %w", w.Namespace, w.Name, hint(err))
	}
	return fromUnstructured(got)
}

// ApplyReady writes cond as the only condition through the status
// subresource; the spec is not touched.
func (c *Client) ApplyReady(ctx context.Context, w *Workload, cond Condition) (*ExternalWorkload, error) {
	u, err := toUnstructured(renderStatus(w, cond))
	if err != nil {
		return nil, err
	}
	got, err := c.Dynamic.Resource(ExternalWorkloadGVR).Namespace(w.Namespace).ApplyStatus(ctx, w.Name, u, applyOptions)
	if err != nil {
		return nil, fmt.Errorf("write Ready=%s on ExternalWorkload %s/%s status: %w", cond.Status, w.Namespace, w.Name, hint(err))
	}
	return fromUnstructured(got)
}

// SetReady writes the Ready condition unless cur already says the same
// (status, reason and message), so a repeated `workload apply` writes
// nothing. lastTransitionTime moves only when the status changes.
func (c *Client) SetReady(ctx context.Context, w *Workload, cur *ExternalWorkload, ready bool, reason, message string) (*ExternalWorkload, error) {
	var old *Condition
	if cur != nil && cur.Status != nil {
		old = ReadyCondition(cur.Status.Conditions)
	}
	next, changed := nextCondition(old, ready, reason, message, time.Now())
	if !changed {
		return cur, nil
	}
	return c.ApplyReady(ctx, w, next)
}

// nextCondition returns the Ready condition to write and whether it differs
// from old.
func nextCondition(old *Condition, ready bool, reason, message string, now time.Time) (Condition, bool) {
	status := "False"
	if ready {
		status = "True"
	}
	next := Condition{Type: ConditionReady, Status: status, Reason: reason, Message: message}
	if old != nil && old.Status == status {
		next.LastTransitionTime = old.LastTransitionTime
		if old.Reason == reason && old.Message == message {
			return next, false
		}
	}
	probed := metav1.NewTime(now.Truncate(time.Second))
	next.LastProbeTime = &probed
	if next.LastTransitionTime == nil {
		t := metav1.NewTime(now.Truncate(time.Second))
		next.LastTransitionTime = &t
	}
	return next, true
}

// DeleteWorkload deletes w's ExternalWorkload, Service and Lease. Objects
// already gone are not an error, so delete can be repeated.
func (c *Client) DeleteWorkload(ctx context.Context, w *Workload) error {
	return c.deleteWorkload(ctx, w, true)
}

func (c *Client) deleteWorkload(ctx context.Context, w *Workload, withService bool) error {
	var errs []error
	if err := c.Dynamic.Resource(ExternalWorkloadGVR).Namespace(w.Namespace).Delete(ctx, w.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("delete ExternalWorkload %s/%s: %w", w.Namespace, w.Name, hint(err)))
	}
	if withService {
		if err := c.Dynamic.Resource(serviceGVR).Namespace(w.Namespace).Delete(ctx, w.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete Service %s/%s: %w", w.Namespace, w.Name, hint(err)))
		}
	}
	if err := c.Dynamic.Resource(leaseGVR).Namespace(w.Namespace).Delete(ctx, w.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("delete Lease %s/%s: %w", w.Namespace, w.Name, hint(err)))
	}
	return errors.Join(errs...)
}

// hint adds the likely fix to API errors a user can act on.
func hint(err error) error {
	switch {
	case apierrors.IsForbidden(err):
		return fmt.Errorf("%w (the host's credentials lack a permission; compare with `meshexp workload rbac`)", err)
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("%w (the kubeconfig's credentials were rejected; a token may have expired)", err)
	}
	return err
}

// applyHint explains a NotFound from an apply, which creates missing
// objects: either the namespace or the resource type is missing.
func applyHint(err error, namespace string) error {
	if !apierrors.IsNotFound(err) {
		return hint(err)
	}
	var se apierrors.APIStatus
	if errors.As(err, &se) && se.Status().Details != nil && se.Status().Details.Kind == "namespaces" {
		return fmt.Errorf("%w (create namespace %s first, or set WORKLOAD_NAMESPACE)", err, namespace)
	}
	return fmt.Errorf("%w (is Linkerd's ExternalWorkload CRD installed? `linkerd install --crds`)", err)
}

func toUnstructured(obj any) (*unstructured.Unstructured, error) {
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encode %T: %w", obj, err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(b); err != nil {
		return nil, fmt.Errorf("decode %T as an object: %w", obj, err)
	}
	return u, nil
}

func fromUnstructured(u *unstructured.Unstructured) (*ExternalWorkload, error) {
	ew := &ExternalWorkload{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, ew); err != nil {
		return nil, fmt.Errorf("decode ExternalWorkload %s/%s: %w", u.GetNamespace(), u.GetName(), err)
	}
	return ew, nil
}
