package probe

import (
	"testing"

	"github.com/meshexp/meshexp/internal/testutil/kubetest"
)

func TestMain(m *testing.M) { kubetest.Main(m) }
