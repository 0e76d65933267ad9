//go:build examples_deps

package durablestreams

// The examples in _examples use these Watermill packages, whose own
// dependencies must be in go.mod; the go tool skips _examples, so without
// this file `go mod tidy` would drop them. The build tag keeps them out of
// every real build.
import (
	_ "github.com/ThreeDotsLabs/watermill/components/cqrs"
	_ "github.com/ThreeDotsLabs/watermill/message/router/middleware"
)
