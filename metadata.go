package durablestreams

// Metadata keys the library sets on messages. Marshalers do not treat them
// specially: a key set here travels like any other.
const (
	// MetadataOffset holds the stream offset of a message: after a
	// successful synchronous Publish, the Stream-Next-Offset of the batch
	// that carried it (empty when the server answered a retried batch as a
	// duplicate); on a received message, the offset of the read it came in.
	MetadataOffset = "durablestreams_offset"
)
