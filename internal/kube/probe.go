package kube

import (
	"context"
	"fmt"
	"io"
	"net/http"
)

// HTTPProbe returns a Prober that GETs url (the proxy's admin /ready, e.g.
// http://127.0.0.1:4191/ready) and succeeds on 200, as kubelet's httpGet
// probe does for 200-399 (linkerd2-proxy answers /ready with 200 or 503).
// hc may be nil for a client without keep-alives, so each probe sees a
// fresh connection like kubelet's.
func HTTPProbe(url string, hc *http.Client) Prober {
	if hc == nil {
		hc = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("probe %s: %w", url, err)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return fmt.Errorf("probe %s: %w", url, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		if resp.StatusCode < 200 || resp.StatusCode > 399 {
			return fmt.Errorf("probe %s: %s %q", url, resp.Status, body)
		}
		return nil
	}
}
