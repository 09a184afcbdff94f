package check

import (
	"fmt"
	"io/fs"
	"strings"
	"testing"

	"github.com/meshexp/meshexp/internal/fleet"
)

func TestTheRegistrationCheckFollowsTheAgentsState(t *testing.T) {
	ready := true
	base := fleet.Published{PID: 7, Controller: "10.0.0.2:8443", Group: "web", Namespace: "shop"}
	with := func(f func(*fleet.Published)) fleet.Published { p := base; f(&p); return p }
	for _, tc := range []struct {
		name  string
		state fleet.Published
		err   error
		want  Status
		says  []string
	}{
		{"registered passes, naming the group and the ExternalWorkload", with(func(p *fleet.Published) {
			p.State, p.ExternalWorkload, p.Ready = fleet.PhaseRegistered, "shop/web-1", &ready
		}), nil, OK, []string{"ExternalGroup shop/web", "ExternalWorkload shop/web-1", "reported ready"}},
		{"refused fails with the controller's words", with(func(p *fleet.Published) {
			p.State, p.Error = fleet.PhaseRefused, "refused by the controller: SPIFFE ID spiffe://td/web-1 may not join ExternalGroup shop/web"
		}), nil, Fail, []string{"10.0.0.2:8443", "ExternalGroup shop/web", "may not join ExternalGroup shop/web"}},
		{"retrying warns with the error", with(func(p *fleet.Published) {
			p.State, p.Error = fleet.PhaseRetrying, "controller unreachable: connection refused"
		}), nil, Warn, []string{"retrying", "controller unreachable: connection refused"}},
		{"connecting warns", with(func(p *fleet.Published) { p.State = fleet.PhaseConnecting }), nil, Warn, []string{"connecting"}},
		{"no state yet warns", fleet.Published{}, fmt.Errorf("the registration state: %w", fs.ErrNotExist), Warn, []string{"no state yet"}},
		{"an unreadable state fails", fleet.Published{}, fmt.Errorf("the registration state: not a regular file"), Fail, []string{"not a regular file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, msg := outcome(t, Registration(func() (fleet.Published, error) { return tc.state, tc.err }))
			if st != tc.want {
				t.Errorf("status %s, want %s (%s)", st, tc.want, msg)
			}
			for _, s := range tc.says {
				if !strings.Contains(msg, s) {
					t.Errorf("%q lacks %q", msg, s)
				}
			}
		})
	}
}
