//go:build !linux

package instance

import (
	"context"
	"errors"
	"fmt"
)

// Lock is this process's hold on the network namespace.
type Lock struct{}

// Acquire needs Linux (abstract unix sockets scoped to a network namespace).
func Acquire(context.Context, string, string) (*Lock, error) {
	return nil, fmt.Errorf("%w: the one-instance lock needs Linux", errors.ErrUnsupported)
}

// Release does nothing.
func (*Lock) Release() {}
