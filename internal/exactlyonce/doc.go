// Package exactlyonce writes the outputs of a consumer group's input to
// an output stream exactly once: one writer per (group, input stream,
// output stream), an idempotent producer fenced by the input lease's
// epoch, each request numbered by Stream-Seq (input ordinal, output
// index) so that a redelivered input's outputs are answered "already
// written", and a claim stream beside the output stream that keeps a
// second writer out. The root package's ExactlyOnce middleware and
// Publisher decide what to write; this package only writes it.
package exactlyonce
