package kube

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// RBAC is what a host needs to register itself and nothing more.
//
// Every rule names the host's own objects (resourceNames), which works
// because meshexp creates objects with server-side apply: an apply is a
// PATCH to the object's own URL, and when it creates the object the API
// server also checks "create" with that name (apiserver
// pkg/endpoints/handlers/patch.go), whereas a POST create has no name to
// restrict. So a host can create and change its own ExternalWorkload,
// status, Service and Lease, and cannot read, list or touch anyone else's.
//
// The objects are apply configurations held as unstructured objects (see
// Client for why not client-go's typed ones).
type RBAC struct {
	ServiceAccount *unstructured.Unstructured
	Role           *unstructured.Unstructured
	RoleBinding    *unstructured.Unstructured
	// RouteReader and RouteReaderBinding, when set (WithRouteReader), let
	// the host list Nodes and ServiceCIDRs for `meshexp route add
	// --from-cluster`: cluster-wide reads of node addresses and pod CIDRs.
	RouteReader        *unstructured.Unstructured
	RouteReaderBinding *unstructured.Unstructured
}

// RouteReaderRole is the ClusterRole shared by every host that reads routes
// from the cluster.
const RouteReaderRole = "meshexp-route-reader"

var rbacV1 = schema.GroupVersion{Group: rbacGroup, Version: "v1"}.String()

// WithRouteReader adds the cluster-wide read access that route discovery
// needs, bound to the host's ServiceAccount.
func (r *RBAC) WithRouteReader() *RBAC {
	ns, sa := r.ServiceAccount.GetNamespace(), r.ServiceAccount.GetName()
	r.RouteReader = newObject(rbacV1, "ClusterRole", RouteReaderRole, "", nil)
	r.RouteReader.Object["rules"] = []any{
		policyRule("", "nodes", nil, "list"),
		policyRule("networking.k8s.io", "servicecidrs", nil, "list"),
	}
	r.RouteReaderBinding = roleBinding("ClusterRoleBinding", RouteReaderRole+"-"+ns+"-"+sa, "", r.ServiceAccount.GetLabels(),
		"ClusterRole", RouteReaderRole, ns, sa)
	return r
}

// RBACName is the name of the host's ServiceAccount, Role and RoleBinding.
func RBACName(w *Workload) string { return "meshexp-" + w.Name }

// RenderRBAC returns the least-privilege RBAC objects for w.
func RenderRBAC(w *Workload) *RBAC {
	name := RBACName(w)
	own := []string{w.Name}
	labels := map[string]string{LabelWorkloadName: w.Name}
	role := newObject(rbacV1, "Role", name, w.Namespace, labels)
	role.Object["rules"] = []any{
		// apply is patch, plus create the first time; get reads the
		// current Ready condition; delete is the graceful-shutdown
		// option.
		policyRule(ExternalWorkloadGVR.Group, ExternalWorkloadGVR.Resource, own, "get", "create", "patch", "delete"),
		policyRule(ExternalWorkloadGVR.Group, ExternalWorkloadGVR.Resource+"/status", own, "get", "patch"),
		policyRule("", "services", own, "get", "create", "patch", "delete"),
		// Renewals are updates with the cached resourceVersion, as
		// kubelet's node lease controller does.
		policyRule("coordination.k8s.io", "leases", own, "get", "create", "patch", "update", "delete"),
	}
	return &RBAC{
		ServiceAccount: newObject("v1", "ServiceAccount", name, w.Namespace, labels),
		Role:           role,
		RoleBinding:    roleBinding("RoleBinding", name, w.Namespace, labels, "Role", name, w.Namespace, name),
	}
}

// policyRule is one rbac/v1 PolicyRule; resourceNames is left out when
// empty.
func policyRule(group, resource string, resourceNames []string, verbs ...string) map[string]any {
	r := map[string]any{
		"apiGroups": []any{group},
		"resources": []any{resource},
		"verbs":     anySlice(verbs),
	}
	if len(resourceNames) > 0 {
		r["resourceNames"] = anySlice(resourceNames)
	}
	return r
}

// roleBinding binds the ServiceAccount saNamespace/sa to the role.
func roleBinding(kind, name, namespace string, labels map[string]string, roleKind, roleName, saNamespace, sa string) *unstructured.Unstructured {
	b := newObject(rbacV1, kind, name, namespace, labels)
	b.Object["roleRef"] = map[string]any{"apiGroup": rbacGroup, "kind": roleKind, "name": roleName}
	b.Object["subjects"] = []any{map[string]any{"kind": "ServiceAccount", "name": sa, "namespace": saNamespace}}
	return b
}

// anySlice converts to the []any that unstructured objects hold.
func anySlice(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// YAML renders the three objects as a YAML stream.
func (r *RBAC) YAML() ([]byte, error) {
	objs := []any{r.ServiceAccount, r.Role, r.RoleBinding}
	if r.RouteReader != nil {
		objs = append(objs, r.RouteReader, r.RouteReaderBinding)
	}
	return marshalDocs(objs...)
}

type gvrObject struct {
	gvr schema.GroupVersionResource
	obj *unstructured.Unstructured
}

// ApplyRBAC server-side applies r with an administrator's client.
func (c *Client) ApplyRBAC(ctx context.Context, r *RBAC) error {
	objs := []gvrObject{
		{serviceAccountGVR, r.ServiceAccount},
		{roleGVR, r.Role},
		{roleBindingGVR, r.RoleBinding},
	}
	if r.RouteReader != nil {
		objs = append(objs, gvrObject{clusterRoleGVR, r.RouteReader}, gvrObject{clusterRoleBindingGVR, r.RouteReaderBinding})
	}
	for _, o := range objs {
		ns, name := o.obj.GetNamespace(), o.obj.GetName()
		res := c.Dynamic.Resource(o.gvr)
		var err error
		if ns == "" {
			_, err = res.Apply(ctx, name, o.obj, applyOptions)
		} else {
			_, err = res.Namespace(ns).Apply(ctx, name, o.obj, applyOptions)
		}
		if err != nil {
			return fmt.Errorf("apply %s %s: %w", o.obj.GetKind(), objectName(ns, name), hint(err))
		}
	}
	return nil
}

func objectName(namespace, name string) string {
	if namespace == "" {
		return name
	}
	return namespace + "/" + name
}

// RequestToken asks the API server (TokenRequest) for a token bound to the
// ServiceAccount in r, valid for ttl. No Secret is created: the token lives
// only in what the caller writes.
func (c *Client) RequestToken(ctx context.Context, r *RBAC, ttl time.Duration) (string, time.Time, error) {
	return RequestServiceAccountToken(ctx, c.Dynamic, r.ServiceAccount.GetNamespace(), r.ServiceAccount.GetName(), ttl)
}

// RequestServiceAccountToken asks the API server for a token bound to the
// ServiceAccount ns/name, valid for ttl.
func RequestServiceAccountToken(ctx context.Context, dyn dynamic.Interface, ns, name string, ttl time.Duration) (string, time.Time, error) {
	// A POST to serviceaccounts/NAME/token (authentication.k8s.io/v1
	// TokenRequest); the dynamic client takes the name from the body.
	tr := newObject("authentication.k8s.io/v1", "TokenRequest", name, ns, nil)
	tr.Object["spec"] = map[string]any{"expirationSeconds": int64(ttl / time.Second)}
	got, err := dyn.Resource(serviceAccountGVR).Namespace(ns).Create(ctx, tr, metav1.CreateOptions{}, "token")
	if err != nil {
		return "", time.Time{}, fmt.Errorf("request a token for ServiceAccount %s/%s: %w", ns, name, hint(err))
	}
	token, _, _ := unstructured.NestedString(got.Object, "status", "token")
	exp, _, _ := unstructured.NestedString(got.Object, "status", "expirationTimestamp")
	if token == "" {
		return "", time.Time{}, fmt.Errorf("request a token for ServiceAccount %s/%s: the API server answered without status.token", ns, name)
	}
	// metav1.Time's decoding: RFC 3339, in local time.
	expires, err := time.Parse(time.RFC3339, exp)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("request a token for ServiceAccount %s/%s: status.expirationTimestamp %q: %w", ns, name, exp, err)
	}
	return token, expires.Local(), nil
}

// HostKubeconfig returns a kubeconfig that reaches the same API server as
// admin (server address and CA) and authenticates with token.
func HostKubeconfig(admin *rest.Config, namespace, user, token string) ([]byte, error) {
	ca := admin.CAData
	if len(ca) == 0 && admin.CAFile != "" {
		cfg := rest.CopyConfig(admin)
		if err := rest.LoadTLSFiles(cfg); err != nil {
			return nil, fmt.Errorf("read the API server's CA from %s: %w", admin.CAFile, err)
		}
		ca = cfg.CAData
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["cluster"] = &clientcmdapi.Cluster{
		Server:                   admin.Host,
		CertificateAuthorityData: ca,
		InsecureSkipTLSVerify:    admin.Insecure,
		TLSServerName:            admin.ServerName,
	}
	kc.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: token}
	kc.Contexts[user] = &clientcmdapi.Context{Cluster: "cluster", AuthInfo: user, Namespace: namespace}
	kc.CurrentContext = user
	b, err := clientcmd.Write(*kc)
	if err != nil {
		return nil, fmt.Errorf("encode kubeconfig: %w", err)
	}
	return b, nil
}
