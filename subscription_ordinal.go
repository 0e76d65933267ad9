package durablestreams

// streamPos is where a subscription stands: its Position, and N, the
// count of messages consumed in the stream since the group first started
// reading it, which is the ordinal of the next one. Unlike Offset and
// Skip, which name one message in many ways (a read may start at any
// earlier offset), N names a message once, the same for every owner:
// exactly-once outputs are numbered by it (see ExactlyOnce). A consumer
// group stores it with the position ({"offset","skip","n"}); an
// OffsetStore gets the Position alone.
type streamPos struct {
	Position
	N int64 `json:"n,omitempty"`
}
