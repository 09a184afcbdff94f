package bootstrap

import (
	"fmt"
	"testing"

	"github.com/meshexp/meshexp/internal/config"
	"github.com/meshexp/meshexp/internal/netfilter"
)

func TestConfigAndNetfilterAgreeOnTheControlMark(t *testing.T) {
	if got, want := config.DefaultControlMark, fmt.Sprintf("%#x", netfilter.DefaultControlMark); got != want {
		t.Errorf("config.DefaultControlMark = %s, netfilter.DefaultControlMark = %s", got, want)
	}
}
