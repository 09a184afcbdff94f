package controller

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

// GroupCRD is the ExternalGroup CustomResourceDefinition.
//
//go:embed crd.yaml
var GroupCRD []byte

// Names shared by the manifests and the running controller.
const (
	DefaultNamespace = "meshexp-system"
	Name             = "meshexp-controller" // ServiceAccount, roles, Deployment, Service, PDB, Lease
	DefaultPort      = 8443
	// MetricsPort serves /metrics; its port name is Linkerd's for its
	// controllers' admin ports (admin-http), which linkerd-viz's
	// Prometheus keeps by name.
	MetricsPort = 9990
	TLSSecret   = "meshexp-controller-tls" // kubectl create secret generic ... --from-file
	tlsMountDir = "/var/run/meshexp/tls"
	// ManagedBy is the value of app.kubernetes.io/managed-by on every
	// object the controller writes; it touches nothing without it.
	ManagedBy      = "meshexp-controller"
	LabelManagedBy = "app.kubernetes.io/managed-by"
)

// InstallOptions are the knobs of `meshexp controller install`.
type InstallOptions struct {
	Namespace   string
	Image       string
	Replicas    int
	TrustDomain string
	LogLevel    string
}

// Validate names every bad option by its flag.
func (o *InstallOptions) Validate() error {
	var errs []error
	if msgs := validation.IsDNS1123Label(o.Namespace); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("--namespace %q: %s", o.Namespace, strings.Join(msgs, "; ")))
	}
	if strings.TrimSpace(o.Image) == "" || strings.ContainsAny(o.Image, " \t\n") {
		errs = append(errs, fmt.Errorf("--image %q: want an image reference such as ghcr.io/meshexp/meshexp:v1", o.Image))
	}
	if o.Replicas < 1 || o.Replicas > 10 {
		errs = append(errs, fmt.Errorf("--replicas %d: want 1 to 10 (2 or more for high availability)", o.Replicas))
	}
	if msgs := validation.IsDNS1123Subdomain(o.TrustDomain); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("--trust-domain %q: %s", o.TrustDomain, strings.Join(msgs, "; ")))
	}
	return errors.Join(errs...)
}

// ControllerID is the SPIFFE ID the controller serves with, in Linkerd's
// form for a ServiceAccount, which `meshexp certs controller` puts in its
// certificate and hosts expect by default.
func ControllerID(trustDomain, namespace string) string {
	return "spiffe://" + trustDomain + "/ns/" + namespace + "/sa/" + Name
}

// ServiceDNSName is the controller Service's in-cluster name, also a DNS
// SAN of its certificate.
func ServiceDNSName(namespace string) string { return Name + "." + namespace + ".svc" }

// RenderInstall returns the manifests for `kubectl apply -f -`, in the
// order they apply: namespace, CRD, identity and rights, workload, network.
func RenderInstall(o InstallOptions) ([]byte, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	out.WriteString("# meshexp controller: apply with kubectl apply -f -\n")
	out.WriteString("# It needs the Secret " + TLSSecret + " in " + o.Namespace + ", made with:\n")
	out.WriteString("#   meshexp certs controller --ca-dir DIR --out-dir DIR --namespace " + o.Namespace + "\n")
	out.WriteString("#   kubectl -n " + o.Namespace + " create secret generic " + TLSSecret + " --from-file=DIR/controller.crt --from-file=DIR/controller.key --from-file=DIR/ca.crt\n")
	out.WriteString("---\n")
	out.Write(GroupCRD)
	for _, obj := range installObjects(o) {
		b, err := yaml.Marshal(obj)
		if err != nil {
			return nil, fmt.Errorf("render manifest: %w", err)
		}
		out.WriteString("---\n")
		out.Write(b)
	}
	return out.Bytes(), nil
}

func meta(name, namespace string) map[string]any {
	m := map[string]any{"name": name, "labels": map[string]any{"app.kubernetes.io/name": Name, "app.kubernetes.io/part-of": "meshexp"}}
	if namespace != "" {
		m["namespace"] = namespace
	}
	return m
}

func rule(group string, resources []string, names []string, verbs ...string) map[string]any {
	r := map[string]any{"apiGroups": []any{group}, "resources": toAny(resources), "verbs": toAny(verbs)}
	if len(names) > 0 {
		r["resourceNames"] = toAny(names)
	}
	return r
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

func installObjects(o InstallOptions) []map[string]any {
	ns := o.Namespace
	selector := map[string]any{"app.kubernetes.io/name": Name}
	subject := []any{map[string]any{"kind": "ServiceAccount", "name": Name, "namespace": ns}}
	return []map[string]any{
		{"apiVersion": "v1", "kind": "Namespace", "metadata": meta(ns, "")},
		{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(Name, ns), "automountServiceAccountToken": true},
		{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": meta(Name, ""), "rules": []any{
			// Groups are read; only their status is written.
			rule("meshexp.io", []string{"externalgroups"}, nil, "get", "list", "watch"),
			rule("meshexp.io", []string{"externalgroups/status"}, nil, "get", "patch"),
			// The hosts' objects: every write is a server-side apply
			// (patch, plus create the first time) or a delete, and the
			// controller checks its managed-by label and owner first.
			rule("workload.linkerd.io", []string{"externalworkloads"}, nil, "get", "list", "watch", "create", "patch", "delete"),
			rule("workload.linkerd.io", []string{"externalworkloads/status"}, nil, "get", "patch"),
			rule("", []string{"services"}, nil, "get", "create", "patch"),
		}},
		{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": meta(Name, ""),
			"roleRef": map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": Name}, "subjects": subject},
		// Leader election: one Lease, by name (apply creates it, so
		// create can be limited to the name too).
		{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta(Name, ns), "rules": []any{
			rule("coordination.k8s.io", []string{"leases"}, []string{Name}, "get", "create", "patch", "update"),
		}},
		{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta(Name, ns),
			"roleRef": map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": Name}, "subjects": subject},
		deployment(o, selector),
		{"apiVersion": "v1", "kind": "Service", "metadata": meta(Name, ns), "spec": map[string]any{
			"selector": selector,
			"ports": []any{map[string]any{"name": "grpc", "port": DefaultPort, "targetPort": "grpc", "protocol": "TCP", "appProtocol": "grpc"},
				map[string]any{"name": "admin-http", "port": MetricsPort, "targetPort": "admin-http", "protocol": "TCP", "appProtocol": "http"}},
		}},
		// maxUnavailable rather than minAvailable so that one replica
		// never blocks a node drain; hosts ride out the gap (their
		// reconnect backoff is capped well below the groups' grace).
		{"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": meta(Name, ns), "spec": map[string]any{
			"maxUnavailable": 1, "selector": map[string]any{"matchLabels": selector},
		}},
	}
}

func deployment(o InstallOptions, selector map[string]any) map[string]any {
	env := func(name, path string) map[string]any {
		return map[string]any{"name": name, "valueFrom": map[string]any{"fieldRef": map[string]any{"fieldPath": path}}}
	}
	container := map[string]any{
		"name":  "controller",
		"image": o.Image,
		"args": toAny([]string{"controller", "--namespace", o.Namespace, "--trust-domain", o.TrustDomain,
			"--tls-dir", tlsMountDir, "--metrics-addr", fmt.Sprintf(":%d", MetricsPort), "--log-level", o.LogLevel, "--log-format", "json"}),
		"env": []any{env("POD_NAME", "metadata.name"), env("POD_IP", "status.podIP"),
			// The Go runtime collects harder as it nears the limit instead
			// of being killed at it.
			map[string]any{"name": "GOMEMLIMIT", "valueFrom": map[string]any{"resourceFieldRef": map[string]any{"resource": "limits.memory"}}}},
		"ports": []any{map[string]any{"name": "grpc", "containerPort": DefaultPort, "protocol": "TCP"},
			map[string]any{"name": "admin-http", "containerPort": MetricsPort, "protocol": "TCP"}},
		"readinessProbe": map[string]any{"httpGet": map[string]any{"path": "/ready", "port": "admin-http"}, "periodSeconds": 5},
		"livenessProbe":  map[string]any{"httpGet": map[string]any{"path": "/live", "port": "admin-http"}, "periodSeconds": 10, "failureThreshold": 3},
		"resources": map[string]any{
			// Measured (make bench-controller): about 140 MiB per 1,000
			// hosts' streams, spread over the replicas.
			"requests": map[string]any{"cpu": "100m", "memory": "256Mi"},
			"limits":   map[string]any{"memory": "2Gi"},
		},
		"securityContext": map[string]any{
			"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532, "allowPrivilegeEscalation": false,
			"readOnlyRootFilesystem": true, "capabilities": map[string]any{"drop": []any{"ALL"}},
			"seccompProfile": map[string]any{"type": "RuntimeDefault"},
		},
		"volumeMounts": []any{map[string]any{"name": "tls", "mountPath": tlsMountDir, "readOnly": true}},
	}
	return map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(Name, o.Namespace),
		"spec": map[string]any{
			"replicas": o.Replicas,
			"selector": map[string]any{"matchLabels": selector},
			"template": map[string]any{
				"metadata": map[string]any{"labels": selector, "annotations": map[string]any{
					// The common scrape annotations, for a Prometheus that
					// discovers pods by them.
					"prometheus.io/scrape": "true", "prometheus.io/port": fmt.Sprint(MetricsPort), "prometheus.io/path": "/metrics",
				}},
				"spec": map[string]any{
					"serviceAccountName": Name,
					"containers":         []any{container},
					"volumes":            []any{map[string]any{"name": "tls", "secret": map[string]any{"secretName": TLSSecret}}},
					// Spread replicas over nodes so a node loss leaves a leader.
					"topologySpreadConstraints": []any{map[string]any{
						"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
						"labelSelector": map[string]any{"matchLabels": selector},
					}},
				},
			},
		},
	}
}
