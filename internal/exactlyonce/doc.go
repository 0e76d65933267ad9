// Package exactlyonce writes the outputs of a consumer group's input to
// an output stream exactly once: one writer per (group, input stream,
// output stream), an idempotent producer fenced by the input lease's
// epoch, each request numbered by Stream-Seq (input ordinal, output
// index) so that a redelivered input's outputs are answered "already
// written", and a claim stream beside the output stream that keeps a
// second writer out. A delivery's context carries its input's Txn (who
// may write its outputs, how they are numbered); Outputs routes a
// Publish of outputs to the partition of their input and writes them in
// one request. The root package's ExactlyOnce middleware arms the Txn and
// words the errors users see.
package exactlyonce
