package subscription

// Position mirrors the root package's Position, which stays the public
// type (go doc shows its fields there); the root converts at the
// boundary. The JSON names are the ones a consumer group stores.
type Position struct {
	Offset string `json:"offset"` // a server offset; "-1" is the start
	Skip   int    `json:"skip"`   // messages acknowledged after Offset
}

// Pos is where a subscription stands: its Position, and N, the count of
// messages consumed in the stream since the group first started reading
// it, which is the ordinal of the next one. Unlike Offset and Skip, which
// name one message in many ways (a read may start at any earlier offset),
// N names a message once, the same for every owner: exactly-once outputs
// are numbered by it (see the root's ExactlyOnce). A consumer group stores
// it with the position ({"offset","skip","n"}); an OffsetStore gets the
// Position alone.
type Pos struct {
	Position
	N int64 `json:"n,omitempty"`
}
