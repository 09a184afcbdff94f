package controller

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Kinds of API writes, the label of the write counters.
const (
	writeCreate      = "create"       // a new ExternalWorkload (server-side apply)
	writeUpdate      = "update"       // its spec from a changed report or template
	writeStatus      = "status"       // its Ready condition
	writeDelete      = "delete"       // a host gone for the group's deleteAfter
	writeService     = "service"      // a group's Service
	writeGroupStatus = "group_status" // a group's status
)

var writeKinds = []string{writeCreate, writeUpdate, writeStatus, writeDelete, writeService, writeGroupStatus}

// Reasons a host's stream is refused, the label of the refusal counter.
var refusalReasons = []string{
	"no_certificate", "bad_svid", "relay_forbidden", "bad_relay", "bad_request",
	"group_not_found", "invalid_template", "not_admitted", "wrong_name", "not_owned", "bound_to_other", "unavailable",
}

// metrics are the replica's counters. They are rendered by hand in the
// Prometheus text format, as meshexp's own /metrics (internal/admin) is:
// a dozen series need nothing of client_golang.
type metrics struct {
	hostStreams, relayStreams atomic.Int64
	hostReports, relayReports atomic.Uint64
	leaderships               atomic.Uint64

	mu        sync.Mutex
	writes    map[string]uint64
	writeErrs map[string]uint64
	refusals  map[string]uint64
}

func newMetrics() *metrics {
	m := &metrics{writes: map[string]uint64{}, writeErrs: map[string]uint64{}, refusals: map[string]uint64{}}
	for _, k := range writeKinds {
		m.writes[k], m.writeErrs[k] = 0, 0
	}
	for _, r := range refusalReasons {
		m.refusals[r] = 0
	}
	return m
}

// wrote counts one API write of kind and whether it failed.
func (m *metrics) wrote(kind string, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.writes[kind]++
	if err != nil {
		m.writeErrs[kind]++
	}
}

func (m *metrics) refused(reason string) {
	m.mu.Lock()
	m.refusals[reason]++
	m.mu.Unlock()
}

// MetricsHandler serves /metrics in the Prometheus text format (0.0.4),
// and the pod's probes: /live (200 while the process serves) and /ready
// (200 while host streams are accepted: caches synced, gRPC serving; 503
// before and while stopping, so a Service sends hosts elsewhere).
func (c *Controller) MetricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /live", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "live")
	})
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		if !c.serving.Load() {
			http.Error(w, "not serving host streams: caches not synced yet, or stopping", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_ = c.writeMetrics(w)
	})
	return mux
}

func (c *Controller) writeMetrics(w io.Writer) error {
	bw := bufio.NewWriter(w)
	family := func(name, typ, help string) {
		fmt.Fprintf(bw, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	sample := func(name string, v float64, labels ...string) {
		bw.WriteString(name)
		for i := 0; i+1 < len(labels); i += 2 {
			sep := ","
			if i == 0 {
				sep = "{"
			}
			bw.WriteString(sep + labels[i] + `="` + labelEscaper.Replace(labels[i+1]) + `"`)
		}
		if len(labels) > 0 {
			bw.WriteByte('}')
		}
		bw.WriteString(" " + strconv.FormatFloat(v, 'g', -1, 64) + "\n")
	}
	m := c.m
	const p = "meshexp_controller_"
	leader := 0.0
	if c.IsLeader() {
		leader = 1
	}
	family(p+"leader", "gauge", "1 while this replica is the leader (the only one writing).")
	sample(p+"leader", leader)
	family(p+"leaderships_total", "counter", "Times this replica became the leader.")
	sample(p+"leaderships_total", float64(m.leaderships.Load()))
	family(p+"streams", "gauge", "Open registration streams on this replica: from hosts, and relayed by other replicas (leader only).")
	sample(p+"streams", float64(m.hostStreams.Load()), "from", "host")
	sample(p+"streams", float64(m.relayStreams.Load()), "from", "replica")
	family(p+"reports_total", "counter", "Host reports received: on the hosts' own streams, and relayed by other replicas.")
	sample(p+"reports_total", float64(m.hostReports.Load()), "from", "host")
	sample(p+"reports_total", float64(m.relayReports.Load()), "from", "replica")

	m.mu.Lock()
	writes, errs, refusals := copyMap(m.writes), copyMap(m.writeErrs), copyMap(m.refusals)
	m.mu.Unlock()
	family(p+"writes_total", "counter", "API writes by kind (failed ones included).")
	for _, k := range writeKinds {
		sample(p+"writes_total", float64(writes[k]), "kind", k)
	}
	family(p+"write_errors_total", "counter", "API writes that failed, by kind.")
	for _, k := range writeKinds {
		sample(p+"write_errors_total", float64(errs[k]), "kind", k)
	}
	family(p+"refusals_total", "counter", "Host streams refused, by reason.")
	for _, r := range refusalReasons {
		sample(p+"refusals_total", float64(refusals[r]), "reason", r)
	}

	// Per group, from the cache of owned ExternalWorkloads every replica
	// keeps: the cluster's view, the same on every replica.
	type count struct{ registered, ready int }
	groups := map[[2]string]*count{}
	for _, obj := range c.works.GetStore().List() {
		u := obj.(*unstructured.Unstructured)
		k := [2]string{u.GetNamespace(), u.GetLabels()[LabelGroup]}
		if groups[k] == nil {
			groups[k] = &count{}
		}
		groups[k].registered++
		if rc := readyCondition(u); rc != nil && rc["status"] == "True" {
			groups[k].ready++
		}
	}
	keys := make([][2]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i][0]+"/"+keys[i][1] < keys[j][0]+"/"+keys[j][1] })
	family(p+"hosts_registered", "gauge", "ExternalWorkloads the controller manages, per ExternalGroup.")
	for _, k := range keys {
		sample(p+"hosts_registered", float64(groups[k].registered), "namespace", k[0], "group", k[1])
	}
	family(p+"hosts_ready", "gauge", "Of those, the ones with Ready=True.")
	for _, k := range keys {
		sample(p+"hosts_ready", float64(groups[k].ready), "namespace", k[0], "group", k[1])
	}
	tracked, heard := c.hub.counts()
	family(p+"hosts_tracked", "gauge", "Hosts in this replica's liveness table (the leader's holds every host; a follower's is empty).")
	sample(p+"hosts_tracked", float64(tracked))
	family(p+"hosts_heard", "gauge", "Of those, the hosts that reported since this replica took over (the rest were adopted from their objects).")
	sample(p+"hosts_heard", float64(heard))

	family("go_goroutines", "gauge", "Goroutines of the controller process.")
	sample("go_goroutines", float64(runtime.NumGoroutine()))
	if rss, ok := residentBytes(); ok {
		family("process_resident_memory_bytes", "gauge", "Resident memory of the controller process.")
		sample("process_resident_memory_bytes", float64(rss))
	}
	return bw.Flush()
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func copyMap(m map[string]uint64) map[string]uint64 {
	out := make(map[string]uint64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// residentBytes reads the process's RSS from /proc/self/statm (Linux; the
// cost of one small read per scrape).
func residentBytes() (uint64, bool) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(bytes.TrimSpace(b)))
	if len(f) < 2 {
		return 0, false
	}
	pages, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return 0, false
	}
	return pages * uint64(os.Getpagesize()), true
}
