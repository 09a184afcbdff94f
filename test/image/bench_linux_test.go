//go:build linux

package image

import (
	"context"
	"testing"
	"time"
)

// BenchmarkDockerRunToProxyReady is the container sibling of
// test/e2e's BenchmarkStartToProxyReady: from `docker run` of the seed's
// line to the proxy's /ready answering 200 on the container's admin port
// (image built beforehand, SPIRE embedded, stand-in proxy). make
// bench-bootstrap prints both, side by side.
//
//	sudo go test -run '^$' -bench DockerRunToProxyReady -benchtime 3x ./test/image
func BenchmarkDockerRunToProxyReady(b *testing.B) {
	d := newDemo(b)
	var total time.Duration
	for i := 0; i < b.N; i++ {
		web := name("bench")
		begin := time.Now()
		c := run(b, web, d.seedLine(web, env.example))
		var ip string
		c.waitFor("the proxy's /ready", func() error {
			if ip == "" {
				var err error
				if ip, err = docker("inspect", "-f", "{{.NetworkSettings.IPAddress}}", web); err != nil || ip == "" {
					ip = ""
					return errNotYet
				}
			}
			_, err := httpGet(context.Background(), "http://"+ip+":4191/ready")
			return err
		})
		total += time.Since(begin)
		b.StopTimer()
		must(b, "stop", web)
		c.wait()
		b.StartTimer()
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/ready")
}
