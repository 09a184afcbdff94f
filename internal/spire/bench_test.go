package spire

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc"
)

// BenchmarkStartToVerifiedSVID measures embedded mode end to end: from
// calling Start (validation, state, configs, server, registration, agent)
// to its return with an SVID fetched as the proxy uid and verified. "cold"
// starts in a new data dir every time (a new host), "warm" restarts in the
// same one (SPIRE's kept state: server CA, entry, agent SVID).
// Run: go test -run '^$' -bench StartToVerifiedSVID -benchtime 5x ./internal/spire/
func BenchmarkStartToVerifiedSVID(b *testing.B) {
	bin := requireSPIRE(b)
	logger, _ := testLogger(b)
	once := func(b *testing.B, opts Options) time.Duration {
		begin := time.Now()
		id, err := Start(context.Background(), opts, logger)
		if err != nil {
			b.Fatal(err)
		}
		took := time.Since(begin)
		b.StopTimer()
		if err := id.Stop(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		return took
	}
	b.Run("cold", func(b *testing.B) {
		var took []time.Duration
		for i := 0; i < b.N; i++ {
			opts, _ := embeddedOptions(b, bin)
			took = append(took, once(b, opts))
		}
		reportDurations(b, took)
	})
	b.Run("warm", func(b *testing.B) {
		opts, _ := embeddedOptions(b, bin)
		b.StopTimer()
		once(b, opts) // the first start in this data dir is cold
		b.StartTimer()
		var took []time.Duration
		for i := 0; i < b.N; i++ {
			took = append(took, once(b, opts))
		}
		reportDurations(b, took)
	})
}

// BenchmarkSPIREFloor measures SPIRE itself with the same rendered configs
// and the same admin API calls, but none of meshexp's logic: no validation,
// no log forwarding, a 10ms poll, an entry for uid 0 so the benchmark
// fetches in-process (no re-exec as the proxy uid), no verification. From
// writing the configs to the first SVID. "default-intervals" drops the
// experimental blocks, i.e. SPIRE's 5s entry-cache reload and agent sync;
// "quarter-second-intervals" shows what going below meshexp's 1s would buy.
func BenchmarkSPIREFloor(b *testing.B) {
	bin := requireSPIRE(b)
	for _, variant := range []string{"short-intervals", "default-intervals", "quarter-second-intervals"} {
		b.Run(variant, func(b *testing.B) {
			var took []time.Duration
			for i := 0; i < b.N; i++ {
				opts, _ := embeddedOptions(b, bin)
				took = append(took, floorOnce(b, opts, variant))
			}
			reportDurations(b, took)
		})
	}
}

func floorOnce(b *testing.B, opts Options, variant string) time.Duration {
	o := opts.withDefaults()
	l := o.layout()
	files, err := RenderConfigs(o)
	if err != nil {
		b.Fatal(err)
	}
	begin := time.Now()
	for _, d := range []string{l.serverData, l.agentData, filepath.Dir(o.SocketPath)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	for p, c := range files {
		switch variant {
		case "default-intervals":
			c = dropExperimental(c)
		case "quarter-second-intervals":
			c = strings.ReplaceAll(c, `interval = "1s"`, `interval = "250ms"`)
		}
		if err := os.WriteFile(p, []byte(c), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	run := func(name, conf string) {
		cmd := exec.Command(filepath.Join(o.BinDir, name), "run", "-config", conf)
		cmd.SysProcAttr = childSysProcAttr()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	run("spire-server", l.serverConf)
	conn, err := grpc.NewClient("unix://"+l.serverSocket, grpcInsecure(), grpc.WithConnectParams(fastConnect))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	for healthCheck(ctx, conn) != nil {
		time.Sleep(10 * time.Millisecond)
	}
	token, err := register(ctx, conn, registration{trustDomain: o.TrustDomain, workload: o.WorkloadName, proxyUID: uint32(os.Geteuid()), tokenTTL: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(l.tokenFile, []byte(token), 0o600); err != nil {
		b.Fatal(err)
	}
	run("spire-agent", l.agentConf)
	client, err := workloadapi.New(ctx, workloadapi.WithAddr("unix://"+o.SocketPath), workloadapi.WithDialOptions(grpc.WithConnectParams(fastConnect)))
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	for {
		if _, err := client.FetchX509SVID(ctx); err == nil {
			return time.Since(begin)
		} else if ctx.Err() != nil {
			b.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func dropExperimental(c string) string {
	var out []string
	skip := false
	for _, line := range strings.Split(c, "\n") {
		switch {
		case strings.TrimSpace(line) == "experimental {":
			skip = true
		case skip && strings.TrimSpace(line) == "}":
			skip = false
		case !skip:
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// reportDurations reports the median, min and max of the runs of this
// benchmark invocation.
func reportDurations(b *testing.B, took []time.Duration) {
	if len(took) == 0 {
		return
	}
	s := slices.Clone(took)
	slices.Sort(s)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	median := s[len(s)/2]
	if len(s)%2 == 0 {
		median = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	b.ReportMetric(ms(median), "median-ms")
	b.ReportMetric(ms(s[0]), "min-ms")
	b.ReportMetric(ms(s[len(s)-1]), "max-ms")
	b.ReportMetric(0, "ns/op")
	b.Logf("runs (ms): %v", func() []int64 {
		var r []int64
		for _, d := range took {
			r = append(r, d.Milliseconds())
		}
		return r
	}())
}
