package check

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/meshexp/meshexp/internal/fleet"
)

// Registration judges the registration through meshexp's controller as
// the host's registration agent last published it (read: fleet.ReadState
// of bootstrap's directory): registered passes, naming the ExternalGroup
// and the ExternalWorkload; refused fails with the controller's words;
// connecting and retrying warn (registration never blocks the workload,
// and the agent keeps trying), as does no state yet.
func Registration(read func() (fleet.Published, error)) func(context.Context) (string, error) {
	return func(context.Context) (string, error) {
		s, err := read()
		if errors.Is(err, fs.ErrNotExist) {
			return "", Warnf("the registration agent has published no state yet: meshexp bootstrap is not running, or has not started the agent (it does once the workload runs)")
		}
		if err != nil {
			return "", err
		}
		group := "ExternalGroup " + s.Namespace + "/" + s.Group
		switch s.State {
		case fleet.PhaseRegistered:
			detail := group + ", ExternalWorkload " + s.ExternalWorkload
			if s.Ready != nil && !*s.Ready {
				detail += ", reported not ready"
			} else if s.Ready != nil {
				detail += ", reported ready"
			}
			return detail, nil
		case fleet.PhaseRefused:
			return "", fmt.Errorf("registration with the controller at %s into %s refused: %s", s.Controller, group, s.Error)
		default: // connecting, retrying
			msg := fmt.Sprintf("%s: not registered with the controller at %s into %s yet", s.State, s.Controller, group)
			if s.Error != "" {
				msg += ": " + s.Error
			}
			return "", Warnf("%s", msg)
		}
	}
}
