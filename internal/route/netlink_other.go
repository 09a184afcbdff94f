//go:build !linux

package route

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
)

var errNotLinux = errors.New("routes are managed through Linux netlink; this system is not Linux")

// Manager is only implemented on Linux.
type Manager struct{}

// NewManager fails: routes are managed through netlink.
func NewManager(*slog.Logger) (*Manager, error) { return nil, errNotLinux }

// NewManagerAt fails: routes are managed through netlink.
func NewManagerAt(string, *slog.Logger) (*Manager, error) { return nil, errNotLinux }

// Close does nothing.
func (m *Manager) Close() {}

// Add fails: routes are managed through netlink.
func (m *Manager) Add(context.Context, []Route) error { return errNotLinux }

// List fails: routes are managed through netlink.
func (m *Manager) List(context.Context) ([]Route, error) { return nil, errNotLinux }

// Remove fails: routes are managed through netlink.
func (m *Manager) Remove(context.Context, []netip.Prefix) ([]Route, error) { return nil, errNotLinux }

// Prune fails: routes are managed through netlink.
func (m *Manager) Prune(context.Context, []Route) ([]Route, error) { return nil, errNotLinux }
