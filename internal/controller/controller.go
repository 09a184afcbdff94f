// Package controller is meshexp's cluster-side controller: hosts register
// over mutual TLS with their SPIFFE identity (package fleet), and the
// controller keeps each one's Linkerd ExternalWorkload true, from the
// template of its ExternalGroup.
//
// Every replica serves host streams and keeps a table of the hosts it
// hears from; a replica that is not the leader relays its hosts' reports to
// the leader, found in the election Lease. Only the leader writes to the
// API server, and only on transitions: steady state costs no writes
// whatever the number of hosts.
package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/meshexp/meshexp/internal/fleet"
)

// Options configure a controller replica.
type Options struct {
	// Namespace holds the election Lease.
	Namespace string
	// AdvertiseAddr is host:port where other replicas reach this one; it
	// is the replica's holderIdentity in the Lease.
	AdvertiseAddr string
	// SVID is the controller's serving certificate (also its client
	// certificate towards the leader); ID the SPIFFE ID in it.
	SVID x509svid.Source
	ID   spiffeid.ID
	// Bundle holds the mesh's trust anchors, for the ID's trust domain.
	Bundle        *x509bundle.Bundle
	ClusterDomain string
	// Election timing (client-go's defaults: 15 s, 10 s, 2 s).
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// SweepPeriod is how often silent hosts are looked for (1 s).
	SweepPeriod time.Duration
	// MetricsListener, when set, serves /metrics (MetricsHandler) while
	// Run runs.
	MetricsListener net.Listener
	// ReleaseOnCancel hands the Lease back when Run's context ends, so a
	// replica stopped cleanly is replaced at once (client-go's option of
	// the same name); without it a stop looks like a crash.
	ReleaseOnCancel bool
}

// Controller is one replica.
type Controller struct {
	o      Options
	dyn    dynamic.Interface
	log    *slog.Logger
	hub    *hub
	m      *metrics
	elect  *Elector
	groups cache.SharedIndexInformer
	works  cache.SharedIndexInformer

	// serving is true while host streams are accepted: the caches have
	// synced and the gRPC server runs (the pod's readiness, /ready).
	serving atomic.Bool

	peersMu sync.Mutex
	peers   map[string]*grpc.ClientConn

	parsedMu sync.Mutex
	parsed   map[string]parsedGroup
	svcDone  map[string]int64 // group UID → generation whose Service was applied
}

// New builds a replica on dyn.
func New(dyn dynamic.Interface, o Options, log *slog.Logger) (*Controller, error) {
	if o.SVID == nil || o.Bundle == nil || o.ID.IsZero() || o.AdvertiseAddr == "" || o.Namespace == "" {
		return nil, errors.New("controller: SVID, bundle, ID, advertise address and namespace are required")
	}
	if o.ClusterDomain == "" {
		o.ClusterDomain = "cluster.local"
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.LeaseDuration, 15*time.Second)
	def(&o.RenewDeadline, 10*time.Second)
	def(&o.RetryPeriod, 2*time.Second)
	def(&o.SweepPeriod, time.Second)
	c := &Controller{o: o, dyn: dyn, log: log, hub: newHub(), m: newMetrics(), peers: map[string]*grpc.ClientConn{}, parsed: map[string]parsedGroup{}, svcDone: map[string]int64{}}
	c.elect = &Elector{Client: dyn, Namespace: o.Namespace, Name: Name, ID: o.AdvertiseAddr,
		LeaseDuration: o.LeaseDuration, RenewDeadline: o.RenewDeadline, RetryPeriod: o.RetryPeriod, Logger: log,
		ReleaseOnCancel: o.ReleaseOnCancel}
	c.groups = informer(dyn, GroupGVR, "")
	c.works = informer(dyn, ExternalWorkloadGVR, LabelManagedBy+"="+ManagedBy)
	return c, nil
}

// informer lists and watches gvr in every namespace through the dynamic
// client (dynamicinformer would link client-go's typed informers).
func informer(dyn dynamic.Interface, gvr schema.GroupVersionResource, selector string) cache.SharedIndexInformer {
	res := dyn.Resource(gvr)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.LabelSelector = selector
			return res.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector = selector
			return res.Watch(ctx, o)
		},
	}
	return cache.NewSharedIndexInformer(lw, &unstructured.Unstructured{}, 0, cache.Indexers{})
}

// IsLeader says whether this replica leads now.
func (c *Controller) IsLeader() bool { _, mine := c.elect.Leader(); return mine }

// group returns the cached ExternalGroup ns/name, parsed once per
// resourceVersion (the sweep asks for every host's group every second).
func (c *Controller) group(ns, name string) *Group {
	obj, ok, _ := c.groups.GetStore().GetByKey(ns + "/" + name)
	if !ok {
		return nil
	}
	u := obj.(*unstructured.Unstructured)
	c.parsedMu.Lock()
	defer c.parsedMu.Unlock()
	if p, ok := c.parsed[ns+"/"+name]; ok && p.rv == u.GetResourceVersion() {
		return p.g
	}
	g, err := ParseGroup(u)
	if err != nil {
		return nil
	}
	c.parsed[ns+"/"+name] = parsedGroup{rv: u.GetResourceVersion(), g: g}
	return g
}

type parsedGroup struct {
	rv string
	g  *Group
}

func (c *Controller) workload(key types.NamespacedName) *unstructured.Unstructured {
	obj, ok, _ := c.works.GetStore().GetByKey(key.String())
	if !ok {
		return nil
	}
	return obj.(*unstructured.Unstructured)
}

// Run serves host streams on lis and campaigns for leadership until ctx
// ends.
func (c *Controller) Run(ctx context.Context, lis net.Listener) error {
	metricsDone := make(chan error, 1)
	if l := c.o.MetricsListener; l != nil {
		metricsSrv := &http.Server{Handler: c.MetricsHandler(), ReadHeaderTimeout: 10 * time.Second}
		go func() { metricsDone <- metricsSrv.Serve(l) }()
		defer metricsSrv.Close()
	}
	go c.groups.RunWithContext(ctx)
	go c.works.RunWithContext(ctx)
	if !cache.WaitForCacheSync(ctx.Done(), c.groups.HasSynced, c.works.HasSynced) {
		return fmt.Errorf("controller: caches of ExternalGroups and ExternalWorkloads did not sync: %w", context.Cause(ctx))
	}
	srv := grpc.NewServer(append(fleet.ServerOptions(), grpc.Creds(serverCreds(c.o.SVID)))...)
	fleet.RegisterServer(srv, c)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	c.serving.Store(true)
	defer c.serving.Store(false)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); c.elect.Run(ctx, c.lead) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-served:
		err = fmt.Errorf("controller: serve host streams on %s: %w", lis.Addr(), err)
	case err = <-metricsDone:
		err = fmt.Errorf("controller: serve metrics on %s: %w", c.o.MetricsListener.Addr(), err)
	}
	c.serving.Store(false)
	srv.Stop()
	wg.Wait()
	c.closePeers()
	return err
}

// syncWorkers write in parallel: each write waits on the API server.
const syncWorkers = 8

// lead runs while this replica is the leader: adopt the hosts known only
// from their objects, then write transitions from the queue and sweep.
func (c *Controller) lead(ctx context.Context) {
	c.svcDone = map[string]int64{}
	c.m.leaderships.Add(1)
	q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[types.NamespacedName]())
	// Start from the objects, not from what this replica heard while it
	// followed: a host that moved to another replica long ago would look
	// dead. Every host gets a fresh grace; reports (local or relayed)
	// refill the table within a heartbeat.
	now := time.Now()
	c.hub.startLeading()
	for _, obj := range c.works.GetStore().List() {
		u := obj.(*unstructured.Unstructured)
		if g := c.group(u.GetNamespace(), u.GetLabels()[LabelGroup]); g != nil && owned(u, g, "") {
			c.hub.adopt(u, g, now)
		}
	}
	c.hub.startQueue(q)
	defer func() {
		c.hub.stopLeading()
		q.ShutDown()
	}()
	for range syncWorkers {
		go func() {
			for {
				key, quit := q.Get()
				if quit {
					return
				}
				if err := c.sync(ctx, key); err != nil && ctx.Err() == nil {
					c.log.Warn("sync ExternalWorkload", "externalworkload", key.String(), "error", err)
					q.AddRateLimited(key)
				} else {
					q.Forget(key)
				}
				q.Done(key)
			}
		}()
	}
	t := time.NewTicker(c.o.SweepPeriod)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.hub.sweep(time.Now(), c.group)
		if i%2 == 0 {
			c.syncGroups(ctx)
		}
	}
}
