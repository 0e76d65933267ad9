package durablestreams

import (
	"strconv"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Metadata keys the library sets on messages. Marshalers do not treat them
// specially: a key set here travels like any other.
const (
	// MetadataOffset holds the stream offset of a message: after a
	// successful synchronous Publish, the Stream-Next-Offset of the batch
	// that carried it (empty when the server answered a retried batch as a
	// duplicate); on a received message, the offset after which the read
	// that delivered it started (an offset names the end of an append, not
	// one message, so it is shared by every message of that read).
	MetadataOffset = "durablestreams_offset"
	// MetadataIndex, on a received message only, counts the messages
	// between MetadataOffset and this one (0: the first after it).
	// Together they locate the message; PositionOf turns them into a
	// Position to resume from.
	MetadataIndex = "durablestreams_index"
)

// PositionOf returns the position just after a received message: stored
// in a consumer group's OffsetStore, it makes the group's next Subscribe
// start with the message that followed msg. ok is false for a message
// that was not received from a Subscriber (no or malformed
// MetadataOffset / MetadataIndex), such as one just published.
func PositionOf(msg *message.Message) (pos Position, ok bool) {
	offset := msg.Metadata.Get(MetadataOffset)
	index, err := strconv.Atoi(msg.Metadata.Get(MetadataIndex))
	if offset == "" || err != nil || index < 0 {
		return Position{}, false
	}
	return Position{Offset: offset, Skip: index + 1}, true
}
