// Package systemtest holds the tests that drive the whole library through
// its public API against a server: the reference server the tests start
// themselves (internal/dstest), a file-backed one they crash and restart,
// one behind a fault proxy, or a hostile fake. Publisher and Subscriber
// behaviours, consumer groups, outages, crashes (child processes re-run
// this package's test binary), reliability under faults, security and
// Watermill's universal test suite (pubsub_test.go) live here.
//
// It has no code of its own: only this file and tests. The root package
// keeps its unit tests (the marshalers, errors), the examples go doc
// shows, and the tests that hold the README against the code. A new test
// of the root package that starts a server belongs here, with the shared
// helpers (helpers_test.go, subscriber_helpers_test.go and the helpers
// beside the tests that use them).
package systemtest
