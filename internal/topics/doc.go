// Package topics keeps a Publisher's topics: each topic's idempotent
// producer, created lazily and exactly once behind a gate that holds its
// requests until the stream exists, released when it sits idle, flushed
// and closed with the Publisher (Registry); and the Waiter that joins the
// producers' acknowledgements of one synchronous Publish. The root package
// words the errors users see: the Registry takes hooks for that (Config).
package topics
