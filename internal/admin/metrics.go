package admin

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// writeMetrics renders a State snapshot in the Prometheus text format
// (version 0.0.4) at scrape time, so nothing is kept between scrapes but
// the State itself. It is written by hand rather than through
// prometheus/client_golang: with the library bootstrap's steady-state RSS
// was 26.3 MiB against 24.6 MiB without the endpoint (`make
// bench-bootstrap`), past the 25 MiB budget; by hand it is 24.8 MiB.
// meshexp's handful of gauges need none of the library. The output parses with prometheus/common's expfmt
// (tested).
func writeMetrics(w io.Writer, st Status) error {
	bw := bufio.NewWriter(w)
	family := func(name, typ, help string) {
		fmt.Fprintf(bw, "# HELP meshexp_%s %s\n# TYPE meshexp_%s %s\n", name, help, name, typ)
	}
	sample := func(name string, v float64, labels ...string) {
		bw.WriteString("meshexp_" + name)
		if len(labels) > 0 {
			bw.WriteByte('{')
			for i := 0; i+1 < len(labels); i += 2 {
				if i > 0 {
					bw.WriteByte(',')
				}
				bw.WriteString(labels[i] + `="` + escape(labels[i+1]) + `"`)
			}
			bw.WriteByte('}')
		}
		bw.WriteString(" " + strconv.FormatFloat(v, 'g', -1, 64) + "\n")
	}
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}

	family("start_time_seconds", "gauge", "When meshexp started, in seconds since the epoch.")
	sample("start_time_seconds", float64(st.Started.UnixNano())/1e9)
	family("ready", "gauge", "1 while the proxy and every workload probe are ready.")
	sample("ready", b(st.Ready))
	if len(st.Phases) > 0 {
		family("phase_duration_seconds", "gauge", "How long each phase of the last start took.")
		for _, p := range st.Phases {
			sample("phase_duration_seconds", p.Seconds, "phase", p.Name)
		}
	}
	if len(st.Children) > 0 {
		family("child_up", "gauge", "1 while the supervised child runs.")
		for _, c := range st.Children {
			sample("child_up", b(c.Up), "child", c.Name)
		}
		family("child_restarts_total", "counter", "Restarts of the supervised child.")
		for _, c := range st.Children {
			sample("child_restarts_total", float64(c.Restarts), "child", c.Name)
		}
		family("child_last_exit_status", "gauge", "The child's last exit status (128+n for signal n), once it exited.")
		for _, c := range st.Children {
			if c.LastExit != nil {
				sample("child_last_exit_status", float64(*c.LastExit), "child", c.Name)
			}
		}
	}
	if !st.Identity.Expiry.IsZero() {
		family("svid_expiry_timestamp_seconds", "gauge", "When the proxy's SVID expires, in seconds since the epoch.")
		sample("svid_expiry_timestamp_seconds", float64(st.Identity.Expiry.Unix()), "spiffe_id", st.Identity.SPIFFEID)
	}
	if len(st.Rules) > 0 {
		family("intercept_rules", "gauge", "Interception rules installed, per family.")
		for _, r := range st.Rules {
			sample("intercept_rules", float64(r.Count), "family", r.Family)
		}
	}
	if reg := st.Registration; reg.Enabled {
		family("registration_ready", "gauge", "The ExternalWorkload's Ready condition as last written (1 True, 0 False, -1 nothing written yet).")
		v := -1.0
		if reg.Ready != "" {
			v = b(reg.Ready == "True")
		}
		sample("registration_ready", v, "reason", reg.Reason)
		if !reg.LastWrite.IsZero() {
			family("registration_last_write_timestamp_seconds", "gauge", "When the Ready condition was last written.")
			sample("registration_last_write_timestamp_seconds", float64(reg.LastWrite.Unix()))
		}
	}
	if len(st.Probes) > 0 {
		family("probe_passing", "gauge", "1 while the workload probe passes.")
		for _, p := range st.Probes {
			sample("probe_passing", b(p.Passing), "probe", p.Probe)
		}
	}
	return bw.Flush()
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func escape(s string) string { return labelEscaper.Replace(s) }
