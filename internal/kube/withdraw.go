package kube

import (
	"context"
	"log/slog"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// Withdrawal says how a host leaves the mesh (see Client.Withdraw).
type Withdrawal struct {
	// Reason and Message go on the Ready=False condition.
	Reason, Message string
	// Delete removes the ExternalWorkload and the Lease, and the Service
	// unless KeepService, once Ready=False is written.
	Delete      bool
	KeepService bool
	// MarkNotReady writes down (Ready=False) and reports gone when there
	// is no ExternalWorkload to mark; nil reads the ExternalWorkload and
	// writes the condition unless it says so already. The registrar
	// passes its own writer, which knows what it last wrote.
	MarkNotReady func(ctx context.Context, down Condition) (gone bool, err error)
	// Step runs each step; nil runs it once. The registrar retries with
	// backoff until its shutdown deadline.
	Step func(ctx context.Context, what string, f func(context.Context) error) error
	// Logger says what was done; nil logs nothing.
	Logger *slog.Logger
}

// Withdraw takes w out of the mesh in the one order Linkerd handles:
// Ready=False first, which makes the destination controller stop offering
// the host, then, with Delete, the objects. Deleting a Ready=True
// ExternalWorkload that is the last endpoint of a Service that stays leaves
// Linkerd offering the deleted host until the Service goes or the
// controller restarts (internal/kube/LINKERD.md). `meshexp workload delete`
// and the registrar's shutdown both leave through here.
func (c *Client) Withdraw(ctx context.Context, w *Workload, o Withdrawal) error {
	step := o.Step
	if step == nil {
		step = func(ctx context.Context, _ string, f func(context.Context) error) error { return f(ctx) }
	}
	mark := o.MarkNotReady
	if mark == nil {
		mark = func(ctx context.Context, down Condition) (bool, error) {
			cur, err := c.GetWorkload(ctx, w)
			if apierrors.IsNotFound(err) {
				return true, nil
			}
			if err != nil {
				return false, err
			}
			_, err = c.SetReady(ctx, w, cur, false, down.Reason, down.Message)
			return false, err
		}
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	down := Condition{Type: ConditionReady, Status: "False", Reason: o.Reason, Message: o.Message}
	gone := false
	if err := step(ctx, "mark the ExternalWorkload not ready", func(ctx context.Context) error {
		g, err := mark(ctx, down)
		gone = g
		return err
	}); err != nil {
		return err
	}
	if gone {
		logger.Info("no ExternalWorkload to withdraw")
	} else {
		logger.Info("marked the ExternalWorkload not ready", "reason", o.Reason)
	}
	if !o.Delete {
		return nil
	}
	if err := step(ctx, "delete the ExternalWorkload, Service and Lease", func(ctx context.Context) error {
		return c.deleteWorkload(ctx, w, !o.KeepService)
	}); err != nil {
		return err
	}
	logger.Info("deleted the ExternalWorkload", "service", !o.KeepService)
	return nil
}
