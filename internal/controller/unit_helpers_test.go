package controller

import (
	"k8s.io/apimachinery/pkg/types"

	"github.com/meshexp/meshexp/internal/fleet"
)

func keyOf(ns, name string) types.NamespacedName {
	return types.NamespacedName{Namespace: ns, Name: name}
}

func reportOf(ready bool) *fleet.Report {
	return &fleet.Report{Group: "web", Namespace: "ns", IPs: []string{"192.0.2.1"}, Ready: ready}
}
