package admin

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// proc is a real child process seen through ChildInfo.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func startProc(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(args[0], args[1:]...), done: make(chan struct{})}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { _ = p.cmd.Process.Kill(); <-p.done })
	return p
}

func (p *proc) PID() int                { return p.cmd.Process.Pid }
func (p *proc) Restarts() int           { return 0 }
func (p *proc) ExitCode() int           { return p.cmd.ProcessState.ExitCode() }
func (p *proc) Exited() <-chan struct{} { return p.done }

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestTheEndpointServesMetricsLiveReadyAndStatus(t *testing.T) {
	st := NewState()
	st.PhaseDone("identity", 1500*time.Millisecond, nil)
	st.PhaseDone("proxy", 20*time.Millisecond, nil)
	up := startProc(t, "sleep", "60")
	gone := startProc(t, "sh", "-c", "exit 3")
	<-gone.done
	st.AddChild("proxy", up)
	st.AddChild("workload", gone)
	st.SetIdentity("spiffe://root.linkerd.cluster.local/vm1", time.Unix(2000000000, 0))
	st.SetRules([]Rules{{Family: "IPv4", Count: 9}})
	st.SetRegistration(func(r *Registration) {
		r.Enabled, r.Ready, r.Reason, r.Message, r.LastWrite = true, "False", "ProbeFailed", "GET http://127.0.0.1:8000/healthz: 503", time.Now()
	})
	var passing atomic.Bool
	st.SetProbes(func() []Probe {
		return []Probe{{Probe: "http://127.0.0.1:8000/healthz", Passing: passing.Load(), Message: "GET http://127.0.0.1:8000/healthz: 503"}}
	})
	st.SetReady(passing.Load)
	st.AddExposition(func(w io.Writer) error {
		_, err := fmt.Fprintln(w, "# HELP meshexp_dns_queries_total Queries.\n# TYPE meshexp_dns_queries_total counter\nmeshexp_dns_queries_total 7")
		return err
	})

	stop, addr, err := Serve("127.0.0.1:0", st, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stop(context.Background()) }()
	base := "http://" + addr.String()

	code, body := get(t, base+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics is not Prometheus text: %v\n%s", err, body)
	}
	value := func(name string, labels ...string) float64 {
		t.Helper()
		f := fams[name]
		if f == nil {
			t.Fatalf("no %s in\n%s", name, body)
		}
	next:
		for _, m := range f.Metric {
			for i := 0; i < len(labels); i += 2 {
				found := false
				for _, l := range m.Label {
					found = found || (l.GetName() == labels[i] && l.GetValue() == labels[i+1])
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Counter != nil:
				return m.Counter.GetValue()
			}
		}
		t.Fatalf("no %s%v", name, labels)
		return 0
	}
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"meshexp_phase_duration_seconds", []string{"phase", "identity"}, 1.5},
		{"meshexp_child_up", []string{"child", "proxy"}, 1},
		{"meshexp_child_up", []string{"child", "workload"}, 0},
		{"meshexp_child_last_exit_status", []string{"child", "workload"}, 3},
		{"meshexp_child_restarts_total", []string{"child", "proxy"}, 0},
		{"meshexp_svid_expiry_timestamp_seconds", nil, 2000000000},
		{"meshexp_intercept_rules", []string{"family", "IPv4"}, 9},
		{"meshexp_registration_ready", []string{"reason", "ProbeFailed"}, 0},
		{"meshexp_probe_passing", []string{"probe", "http://127.0.0.1:8000/healthz"}, 0},
		{"meshexp_ready", nil, 0},
		{"meshexp_dns_queries_total", nil, 7},
	} {
		if got := value(tc.name, tc.labels...); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}

	if code, _ := get(t, base+"/live"); code != 200 {
		t.Errorf("/live: %d", code)
	}
	if code, _ := get(t, base+"/ready"); code != 503 {
		t.Errorf("/ready while a probe fails: %d", code)
	}
	passing.Store(true)
	if code, _ := get(t, base+"/ready"); code != 200 {
		t.Errorf("/ready: %d", code)
	}

	got, err := Fetch(context.Background(), http.DefaultClient, addr.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Children) != 2 || got.Children[0].PID != up.PID() || !got.Children[0].Up || got.Children[1].LastExit == nil || *got.Children[1].LastExit != 3 {
		t.Errorf("children: %+v", got.Children)
	}
	var b bytes.Buffer
	WriteText(&b, got, time.Now())
	for _, want := range []string{"meshexp ready", fmt.Sprintf("proxy      up, pid %d", up.PID()), "workload   down, exited 3", "IPv4: 9 rules", "Ready=False ProbeFailed: GET http://127.0.0.1:8000/healthz: 503", "✓ http://127.0.0.1:8000/healthz"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status text lacks %q:\n%s", want, b.String())
		}
	}
}

func TestATakenAddressIsAnError(t *testing.T) {
	stop, addr, err := Serve("127.0.0.1:0", NewState(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stop(context.Background()) }()
	if _, _, err := Serve(addr.String(), NewState(), slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "admin endpoint: listen on "+addr.String()) {
		t.Errorf("got %v", err)
	}
}
