package topics

import (
	"testing"

	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

// TestMain stops the reference server the tests of this package start.
func TestMain(m *testing.M) { dstest.Main(m) }
