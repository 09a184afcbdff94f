package kube

import (
	"context"
	"fmt"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	rbacv1ac "k8s.io/client-go/applyconfigurations/rbac/v1"
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
type RBAC struct {
	ServiceAccount *corev1ac.ServiceAccountApplyConfiguration
	Role           *rbacv1ac.RoleApplyConfiguration
	RoleBinding    *rbacv1ac.RoleBindingApplyConfiguration
	// RouteReader and RouteReaderBinding, when set (WithRouteReader), let
	// the host list Nodes and ServiceCIDRs for `meshexp route add
	// --from-cluster`: cluster-wide reads of node addresses and pod CIDRs.
	RouteReader        *rbacv1ac.ClusterRoleApplyConfiguration
	RouteReaderBinding *rbacv1ac.ClusterRoleBindingApplyConfiguration
}

// RouteReaderRole is the ClusterRole shared by every host that reads routes
// from the cluster.
const RouteReaderRole = "meshexp-route-reader"

// WithRouteReader adds the cluster-wide read access that route discovery
// needs, bound to the host's ServiceAccount.
func (r *RBAC) WithRouteReader() *RBAC {
	ns, sa := *r.ServiceAccount.Namespace, *r.ServiceAccount.Name
	r.RouteReader = rbacv1ac.ClusterRole(RouteReaderRole).WithRules(
		rbacv1ac.PolicyRule().WithAPIGroups("").WithResources("nodes").WithVerbs("list"),
		rbacv1ac.PolicyRule().WithAPIGroups("networking.k8s.io").WithResources("servicecidrs").WithVerbs("list"),
	)
	r.RouteReaderBinding = rbacv1ac.ClusterRoleBinding(RouteReaderRole + "-" + ns + "-" + sa).
		WithLabels(r.ServiceAccount.Labels).
		WithRoleRef(rbacv1ac.RoleRef().WithAPIGroup(rbacv1.GroupName).WithKind("ClusterRole").WithName(RouteReaderRole)).
		WithSubjects(rbacv1ac.Subject().WithKind(rbacv1.ServiceAccountKind).WithName(sa).WithNamespace(ns))
	return r
}

// RBACName is the name of the host's ServiceAccount, Role and RoleBinding.
func RBACName(w *Workload) string { return "meshexp-" + w.Name }

// RenderRBAC returns the least-privilege RBAC objects for w.
func RenderRBAC(w *Workload) *RBAC {
	name := RBACName(w)
	own := []string{w.Name}
	labels := map[string]string{LabelWorkloadName: w.Name}
	rule := func(group, resource string, verbs ...string) *rbacv1ac.PolicyRuleApplyConfiguration {
		return rbacv1ac.PolicyRule().
			WithAPIGroups(group).
			WithResources(resource).
			WithResourceNames(own...).
			WithVerbs(verbs...)
	}
	return &RBAC{
		ServiceAccount: corev1ac.ServiceAccount(name, w.Namespace).WithLabels(labels),
		Role: rbacv1ac.Role(name, w.Namespace).WithLabels(labels).WithRules(
			// apply is patch, plus create the first time; get reads the
			// current Ready condition; delete is the graceful-shutdown
			// option.
			rule(ExternalWorkloadGVR.Group, ExternalWorkloadGVR.Resource, "get", "create", "patch", "delete"),
			rule(ExternalWorkloadGVR.Group, ExternalWorkloadGVR.Resource+"/status", "get", "patch"),
			rule("", "services", "get", "create", "patch", "delete"),
			// Renewals are updates with the cached resourceVersion, as
			// kubelet's node lease controller does.
			rule("coordination.k8s.io", "leases", "get", "create", "patch", "update", "delete"),
		),
		RoleBinding: rbacv1ac.RoleBinding(name, w.Namespace).WithLabels(labels).
			WithRoleRef(rbacv1ac.RoleRef().WithAPIGroup(rbacv1.GroupName).WithKind("Role").WithName(name)).
			WithSubjects(rbacv1ac.Subject().WithKind(rbacv1.ServiceAccountKind).WithName(name).WithNamespace(w.Namespace)),
	}
}

// YAML renders the three objects as a YAML stream.
func (r *RBAC) YAML() ([]byte, error) {
	objs := []any{r.ServiceAccount, r.Role, r.RoleBinding}
	if r.RouteReader != nil {
		objs = append(objs, r.RouteReader, r.RouteReaderBinding)
	}
	return marshalDocs(objs...)
}

// ApplyRBAC server-side applies r with an administrator's client.
func (c *Client) ApplyRBAC(ctx context.Context, r *RBAC) error {
	if _, err := c.Core.ServiceAccounts(*r.ServiceAccount.Namespace).Apply(ctx, r.ServiceAccount, applyOptions); err != nil {
		return fmt.Errorf("apply ServiceAccount %s/%s: %w", *r.ServiceAccount.Namespace, *r.ServiceAccount.Name, hint(err))
	}
	if _, err := c.RBAC.Roles(*r.Role.Namespace).Apply(ctx, r.Role, applyOptions); err != nil {
		return fmt.Errorf("apply Role %s/%s: %w", *r.Role.Namespace, *r.Role.Name, hint(err))
	}
	if _, err := c.RBAC.RoleBindings(*r.RoleBinding.Namespace).Apply(ctx, r.RoleBinding, applyOptions); err != nil {
		return fmt.Errorf("apply RoleBinding %s/%s: %w", *r.RoleBinding.Namespace, *r.RoleBinding.Name, hint(err))
	}
	if r.RouteReader != nil {
		if _, err := c.RBAC.ClusterRoles().Apply(ctx, r.RouteReader, applyOptions); err != nil {
			return fmt.Errorf("apply ClusterRole %s: %w", *r.RouteReader.Name, hint(err))
		}
		if _, err := c.RBAC.ClusterRoleBindings().Apply(ctx, r.RouteReaderBinding, applyOptions); err != nil {
			return fmt.Errorf("apply ClusterRoleBinding %s: %w", *r.RouteReaderBinding.Name, hint(err))
		}
	}
	return nil
}

// RequestToken asks the API server (TokenRequest) for a token bound to the
// ServiceAccount in r, valid for ttl. No Secret is created: the token lives
// only in what the caller writes.
func (c *Client) RequestToken(ctx context.Context, r *RBAC, ttl time.Duration) (string, time.Time, error) {
	secs := int64(ttl / time.Second)
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &secs}}
	ns, name := *r.ServiceAccount.Namespace, *r.ServiceAccount.Name
	got, err := c.Core.ServiceAccounts(ns).CreateToken(ctx, name, tr, metav1.CreateOptions{})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("request a token for ServiceAccount %s/%s: %w", ns, name, hint(err))
	}
	return got.Status.Token, got.Status.ExpirationTimestamp.Time, nil
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
