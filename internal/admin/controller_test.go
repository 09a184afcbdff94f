package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestStatusShowsTheRegistrationThroughTheController(t *testing.T) {
	st := NewState()
	now := time.Now()
	ready := true
	ctl := Controller{Addr: "10.0.0.2:8443", Group: "shop/web", State: "registered", ExternalWorkload: "shop/web-1",
		LastRegistered: now.Add(-time.Minute), Ready: &ready, Changed: now.Add(-time.Minute), AgentPID: 42}
	st.SetController(func() Controller { return ctl })
	stop, addr, err := Serve("127.0.0.1:0", st, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stop(context.Background()) }()

	_, body := get(t, "http://"+addr.String()+"/status")
	var raw struct {
		Registration struct {
			Controller map[string]any `json:"controller"`
		} `json:"registration"`
	}
	if err := json.Unmarshal([]byte(body), &raw); err != nil {
		t.Fatal(err)
	}
	if c := raw.Registration.Controller; c["state"] != "registered" || c["externalWorkload"] != "shop/web-1" || c["group"] != "shop/web" || c["ready"] != true {
		t.Errorf("/status registration.controller = %v", c)
	}
	got, err := Fetch(context.Background(), http.DefaultClient, addr.String())
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	WriteText(&b, got, now)
	for _, want := range []string{"through the controller at 10.0.0.2:8443, ExternalGroup shop/web",
		"registered as ExternalWorkload shop/web-1, reported ready (changed 1m0s ago)"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status text lacks %q:\n%s", want, b.String())
		}
	}
	if strings.Contains(b.String(), "--register false") {
		t.Errorf("status text says registration is off:\n%s", b.String())
	}

	ctl = Controller{Addr: "10.0.0.2:8443", Group: "shop/web", State: "retrying", ExternalWorkload: "shop/web-1",
		Error: "controller unreachable: connection refused", LastRegistered: now.Add(-time.Hour), Ready: &ready, Changed: now.Add(-5 * time.Second)}
	b.Reset()
	WriteText(&b, st.Snapshot(), now)
	for _, want := range []string{"retrying, last reported ready (changed 5s ago): controller unreachable: connection refused",
		"last registered 1h0m0s ago as ExternalWorkload shop/web-1"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status text lacks %q:\n%s", want, b.String())
		}
	}
}

func TestStatusWithoutAControllerHasNoControllerSection(t *testing.T) {
	b, err := json.Marshal(NewState().Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), `"controller"`) {
		t.Errorf("/status without a controller: %s", b)
	}
}
