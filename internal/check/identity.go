package check

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/meshexp/meshexp/internal/spire"
)

// SVID fetches the SVID as the proxy would (spire.FetchSVID re-executes
// meshexp as the proxy uid), which verifies its chain to the trust anchor
// and its SPIFFE ID, then judges its expiry: expired fails; less than half
// its lifetime left warns, since the agent renews at half life.
func SVID(o spire.FetchOptions, now func() time.Time) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		s, err := spire.FetchSVID(ctx, o)
		if err != nil {
			return "", err
		}
		leaf := s.Certificates[0]
		left := leaf.NotAfter.Sub(now())
		life := leaf.NotAfter.Sub(leaf.NotBefore)
		detail := fmt.Sprintf("%s, %d certificates, expires %s, in %s", s.ID, len(s.Certificates), leaf.NotAfter.UTC().Format(time.RFC3339), left.Truncate(time.Second))
		switch {
		case left <= 0:
			return detail, fmt.Errorf("the SVID expired at %s", leaf.NotAfter.UTC().Format(time.RFC3339))
		case left < life/2:
			return detail, Warnf("the SVID has %s of its %s left: the agent has not renewed it at half life", left.Truncate(time.Second), life)
		}
		return detail, nil
	}
}

var versionRE = regexp.MustCompile(`\d+\.\d+\.\d+`)

// BinaryVersion runs bin with args and returns the first x.y.z it prints.
func BinaryVersion(ctx context.Context, bin string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if v := versionRE.Find(out); v != nil {
		return string(v), nil
	}
	if err == nil {
		err = errors.New("no version in its output")
	}
	return "", fmt.Errorf("%s %s: %w", bin, strings.Join(args, " "), err)
}

// lastGoodProxy is the last linkerd2-proxy release known to fetch its SVID
// from every SPIRE agent: later releases (2.329.0 in the report) fail
// against some agents with "unknown service
// spiffe.workloadapi.SpiffeWorkloadAPI" (linkerd/linkerd2#14730).
const lastGoodProxy = "2.325.0"

// Versions reports the proxy's and the SPIRE agent's versions and flags
// the known-incompatible pair. proxy and agent return a version or an
// error (a version that cannot be read only warns).
func Versions(proxy, agent func(context.Context) (string, error)) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		pv, perr := proxy(ctx)
		av, aerr := agent(ctx)
		detail := fmt.Sprintf("proxy %s, spire-agent %s", orUnknown(pv), orUnknown(av))
		if pv != "" && Newer(pv, lastGoodProxy) {
			return detail, Warnf("proxy %s is newer than %s: some SPIRE agents answer it \"unknown service spiffe.workloadapi.SpiffeWorkloadAPI\" (linkerd/linkerd2#14730); if the proxy logs that, use proxy %s", pv, lastGoodProxy, lastGoodProxy)
		}
		if perr != nil || aerr != nil {
			return detail, Warnf("%s", strings.TrimPrefix(joinErr(perr, aerr), "; "))
		}
		return detail, nil
	}
}

func orUnknown(v string) string {
	if v == "" {
		return "unknown"
	}
	return v
}

func joinErr(errs ...error) string {
	var s []string
	for _, e := range errs {
		if e != nil {
			s = append(s, e.Error())
		}
	}
	return strings.Join(s, "; ")
}

// Newer says whether version a (x.y.z) is later than b.
func Newer(a, b string) bool {
	pa, pb := parts(a), parts(b)
	for i := range 3 {
		if pa[i] != pb[i] {
			return pa[i] > pb[i]
		}
	}
	return false
}

func parts(v string) [3]int {
	var out [3]int
	for i, p := range strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3) {
		out[i], _ = strconv.Atoi(p)
	}
	return out
}
