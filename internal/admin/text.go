package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Fetch reads /status from a running meshexp at addr (host:port).
func Fetch(ctx context.Context, hc *http.Client, addr string) (Status, error) {
	var st Status
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/status", nil)
	if err != nil {
		return st, fmt.Errorf("read meshexp's status: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return st, fmt.Errorf("read meshexp's status from %s (is bootstrap running with its admin endpoint on?): %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("read meshexp's status from %s: %s", addr, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("read meshexp's status from %s: %w", addr, err)
	}
	return st, nil
}

// WriteText prints st for a person.
func WriteText(w io.Writer, st Status, now time.Time) {
	yes := func(b bool, y, n string) string {
		if b {
			return y
		}
		return n
	}
	fmt.Fprintf(w, "meshexp %s, up %s\n", yes(st.Ready, "ready", "NOT ready"), since(now, st.Started))
	fmt.Fprintln(w, "\nphases (last start)")
	for _, p := range st.Phases {
		line := fmt.Sprintf("  %-10s %8.3fs", p.Name, p.Seconds)
		if p.Error != "" {
			line += "  failed: " + p.Error
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintln(w, "\nchildren")
	for _, c := range st.Children {
		state := fmt.Sprintf("up, pid %d, uptime %s", c.PID, since(now, c.Started))
		if !c.Up {
			state = "down"
			if c.LastExit != nil {
				state += fmt.Sprintf(", exited %d", *c.LastExit)
			}
		}
		fmt.Fprintf(w, "  %-10s %s, %d restarts\n", c.Name, state, c.Restarts)
	}
	fmt.Fprintln(w, "\nidentity")
	id := st.Identity.SPIFFEID
	if id == "" {
		id = "unknown"
	}
	if st.Identity.Expiry.IsZero() {
		fmt.Fprintf(w, "  %s\n", id)
	} else {
		fmt.Fprintf(w, "  %s, SVID expires %s (in %s)\n", id, st.Identity.Expiry.UTC().Format(time.RFC3339), st.Identity.Expiry.Sub(now).Truncate(time.Second))
	}
	fmt.Fprintln(w, "\nrules")
	if len(st.Rules) == 0 {
		fmt.Fprintln(w, "  none (interception off)")
	}
	for _, r := range st.Rules {
		fmt.Fprintf(w, "  %s: %d rules\n", r.Family, r.Count)
	}
	fmt.Fprintln(w, "\nregistration")
	switch reg := st.Registration; {
	case reg.Controller != nil:
		writeController(w, *reg.Controller, now)
	case !reg.Enabled:
		fmt.Fprintln(w, "  off (--register false)")
	case reg.Ready == "":
		fmt.Fprintln(w, "  nothing written yet")
	default:
		line := fmt.Sprintf("  Ready=%s %s", reg.Ready, reg.Reason)
		if reg.Message != "" {
			line += ": " + reg.Message
		}
		fmt.Fprintf(w, "%s (written %s ago)\n", line, since(now, reg.LastWrite))
	}
	if st.Registration.LastError != "" {
		fmt.Fprintf(w, "  last API error: %s\n", st.Registration.LastError)
	}
	if len(st.Probes) > 0 {
		fmt.Fprintln(w, "\nprobes")
		for _, p := range st.Probes {
			line := "  " + yes(p.Passing, "✓ ", "× ") + p.Probe
			if p.Message != "" {
				line += ": " + p.Message
			}
			fmt.Fprintln(w, strings.TrimRight(line, " "))
		}
	}
}

// writeController prints the registration through the controller.
func writeController(w io.Writer, c Controller, now time.Time) {
	fmt.Fprintf(w, "  through the controller at %s, ExternalGroup %s\n", c.Addr, c.Group)
	parts := []string{c.State}
	registered := c.State == "registered"
	if registered && c.ExternalWorkload != "" {
		parts[0] += " as ExternalWorkload " + c.ExternalWorkload
	}
	if c.Ready != nil {
		r := map[bool]string{true: "reported ready", false: "reported NOT ready"}[*c.Ready]
		if !registered {
			r = "last " + r
		}
		parts = append(parts, r)
	}
	line := "  " + strings.Join(parts, ", ")
	if !c.Changed.IsZero() {
		line += fmt.Sprintf(" (changed %s ago)", since(now, c.Changed))
	}
	if c.Error != "" {
		line += ": " + c.Error
	}
	fmt.Fprintln(w, line)
	if !registered && !c.LastRegistered.IsZero() {
		fmt.Fprintf(w, "  last registered %s ago as ExternalWorkload %s\n", since(now, c.LastRegistered), c.ExternalWorkload)
	}
}

func since(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return now.Sub(t).Truncate(time.Second).String()
}
