package bootstrap

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// ProbeReady asks the proxy's admin server once whether it is ready
// (linkerd2-proxy serves /ready with 200 once it has its identity and
// policy).
func ProbeReady(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", url, resp.Status)
	}
	return nil
}

// WaitReady polls url until it answers 200 or ctx ends; the error names
// the last answer so a timeout says what the proxy was saying.
func WaitReady(ctx context.Context, url string) error {
	client := &http.Client{Timeout: 2 * time.Second}
	delay := 50 * time.Millisecond
	for {
		err := ProbeReady(ctx, client, url)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last answer: %v)", ctx.Err(), err)
		case <-time.After(delay):
		}
		if delay < 500*time.Millisecond {
			delay *= 2
		}
	}
}
