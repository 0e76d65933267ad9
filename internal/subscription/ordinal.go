package subscription

// Pos is where a subscription stands: the message after Offset and Skip
// (the root's Position: an OffsetStore gets those two), and N, the count
// of messages consumed in the stream since the group first started
// reading it, which is the ordinal of the next one. Unlike Offset and
// Skip, which name one message in many ways (a read may start at any
// earlier offset), N names a message once, the same for every owner:
// exactly-once outputs are numbered by it (see the root's ExactlyOnce). A
// consumer group stores all three ({"offset","skip","n"}).
type Pos struct {
	Offset string `json:"offset"` // a server offset; "-1" is the start
	Skip   int    `json:"skip"`   // messages acknowledged after Offset
	N      int64  `json:"n,omitempty"`
}
