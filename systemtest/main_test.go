package systemtest

import (
	"testing"

	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

// TestMain stops the reference servers the tests of this package start.
func TestMain(m *testing.M) { dstest.Main(m) }
