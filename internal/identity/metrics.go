package identity

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// expiryMetric is the proxy's gauge of its certificate's NotAfter in Unix
// seconds (linkerd2-proxy linkerd/app identity metrics:
// identity_cert_expiration_timestamp_seconds; newer releases put it under
// a control_ prefix, which is matched too).
const expiryMetric = "identity_cert_expiration_timestamp_seconds"

// ProxyMetrics is a Source reading the expiry of the proxy's current SVID
// from its admin /metrics (url), as an operator's Prometheus would.
func ProxyMetrics(url string, hc *http.Client) Source {
	if hc == nil {
		hc = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	}
	return func(ctx context.Context) (time.Time, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return time.Time{}, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return time.Time{}, fmt.Errorf("reading the proxy's metrics: %w", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return time.Time{}, fmt.Errorf("reading the proxy's metrics: %s", resp.Status)
		}
		return parseExpiry(io.LimitReader(resp.Body, 8<<20))
	}
}

// parseExpiry finds the expiry gauge in a Prometheus text exposition.
func parseExpiry(r io.Reader) (time.Time, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		name, _, _ = strings.Cut(name, "{")
		if name != expiryMetric && name != "control_"+expiryMetric {
			continue
		}
		f, err := strconv.ParseFloat(strings.Fields(value)[0], 64)
		if err != nil || !(f > 0) || math.IsInf(f, 0) {
			return time.Time{}, fmt.Errorf("proxy metric %s = %q is not a timestamp", name, value)
		}
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9)), nil
	}
	if err := sc.Err(); err != nil {
		return time.Time{}, err
	}
	return time.Time{}, fmt.Errorf("the proxy's metrics have no %s yet (no SVID held)", expiryMetric)
}
