// Package topics is a Publisher's machinery. Its Registry keeps each
// topic's idempotent producer, created lazily and exactly once behind a
// gate that holds its requests until the stream exists, released when it
// sits idle, flushed and closed with the Publisher; and it publishes
// through them: a call's messages marshaled and validated before any is
// appended, spread over a topic's partitions, joined with the producers'
// acknowledgements (a synchronous Publish) or handed to OnAsyncError; and
// the close of a topic's streams. The root package words the errors users
// see: the Registry takes hooks for that (Config).
package topics
