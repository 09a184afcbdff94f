// Command workload is the test and demo workload that meshexp bootstrap
// starts: it serves HTTP and, on request, calls a peer or tries to fetch an
// SVID, so tests can see what the workload's uid may and may not do.
//
// It lives with the tests; it is not part of meshexp.
//
//	GET /whoami         "uid=<uid> gid=<gid>"
//	GET /call?url=URL   fetches URL from the workload and returns its body
//	GET /svid           tries the SPIRE Workload API (MESHEXP_TEST_SPIRE_SOCKET)
//	                    for 3 s and reports what it got
//
// `workload get URL` makes one request and prints the body.
//
// Environment: WORKLOAD_LISTEN (default :8000), PEER_URL (called once a
// second and logged when set), MESHEXP_TEST_SPIRE_SOCKET.
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

func main() {
	// "workload get URL": one request, body on stdout (tests run it with
	// docker exec as the workload's user to show its outbound path).
	if len(os.Args) == 3 && os.Args[1] == "get" {
		body, err := get(context.Background(), os.Args[2])
		if err != nil {
			log.Fatalf("workload: GET %s: %v", os.Args[2], err)
		}
		os.Stdout.Write(body)
		return
	}
	addr := envOr("WORKLOAD_LISTEN", ":8000")
	mux := http.NewServeMux()
	mux.HandleFunc("/whoami", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "uid=%d gid=%d\n", os.Getuid(), os.Getgid())
	})
	mux.HandleFunc("/call", func(w http.ResponseWriter, r *http.Request) {
		body, err := get(r.Context(), r.URL.Query().Get("url"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.Write(body)
	})
	mux.HandleFunc("/svid", func(w http.ResponseWriter, r *http.Request) {
		sock := os.Getenv("MESHEXP_TEST_SPIRE_SOCKET")
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		svid, err := workloadapi.FetchX509SVID(ctx, workloadapi.WithAddr("unix://"+sock))
		if err != nil {
			fmt.Fprintf(w, "no svid: %v\n", err)
			return
		}
		fmt.Fprintf(w, "svid %s\n", svid.ID)
	})
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if peer := os.Getenv("PEER_URL"); peer != "" {
		go callPeer(ctx, peer)
	}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(shut)
	}()
	log.Printf("workload: serving on %s as uid %d", addr, os.Getuid())
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		log.Fatalf("workload: %v", err)
	}
	log.Printf("workload: stopped")
}

func callPeer(ctx context.Context, url string) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		body, err := get(ctx, url)
		if err != nil {
			log.Printf("workload: GET %s: %v", url, err)
		} else {
			log.Printf("workload: GET %s: %s", url, body)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func get(ctx context.Context, url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(io.LimitReader(resp.Body, 64<<10))
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
