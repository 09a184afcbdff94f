package check

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// Clock skew limits. Certificates are checked against local time on both
// ends of every mTLS connection; a minute is what Linkerd's own check
// allows between the cluster and a node, and 5 s is enough to notice.
const (
	SkewWarn = 5 * time.Second
	SkewFail = time.Minute
)

// ServerDate GETs url with hc and returns the Date header's time (whatever
// the status) and the local time halfway through the request.
func ServerDate(ctx context.Context, hc *http.Client, url string) (server, local time.Time, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("read the server's clock: %w", err)
	}
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("read the clock of %s: %w", url, err)
	}
	resp.Body.Close()
	end := time.Now()
	d := resp.Header.Get("Date")
	if d == "" {
		return time.Time{}, time.Time{}, fmt.Errorf("read the clock of %s: no Date header", url)
	}
	server, err = http.ParseTime(d)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("read the clock of %s: Date %q: %w", url, d, err)
	}
	return server, start.Add(end.Sub(start) / 2), nil
}

// ClockSkew compares this host's clock with a server's Date header. Date
// has one-second resolution, so skew under a second reads as none.
func ClockSkew(hc *http.Client, url string) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		server, local, err := ServerDate(ctx, hc, url)
		if err != nil {
			return "", err
		}
		skew := local.Sub(server).Truncate(time.Second)
		if skew < 0 {
			skew = -skew
		}
		// Date truncates to the second: allow one second of rounding.
		if skew > time.Second {
			skew -= time.Second
		} else {
			skew = 0
		}
		detail := fmt.Sprintf("%s apart", skew)
		switch {
		case skew >= SkewFail:
			return detail, fmt.Errorf("this host's clock is %s away from the server's (limit %s)", skew, SkewFail)
		case skew >= SkewWarn:
			return detail, Warnf("this host's clock is %s away from the server's", skew)
		}
		return detail, nil
	}
}
