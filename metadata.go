package durablestreams

import (
	"strconv"

	"github.com/ThreeDotsLabs/watermill/components/cqrs"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/durablestreams/watermill-durablestreams/internal/defaults"
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

// PartitionKeyer is a command or event that names its partition key,
// typically the id of its aggregate. With a partitioned topic
// (PublisherConfig.Partitions) all the commands or events of one aggregate
// go to one partition: they are handled in order, by one member of a
// ConsumerGroup at a time, while other aggregates are spread over the
// other members.
type PartitionKeyer interface {
	PartitionKey() string
}

// KeyCommands is a cqrs.CommandBusConfig.OnSend: it sets the partition key
// of each command that implements PartitionKeyer, under the default
// PublisherConfig.PartitionKey ("partition_key"). A command without one
// is sent without a key.
func KeyCommands(p cqrs.CommandBusOnSendParams) error {
	setPartitionKey(p.Command, p.Message)
	return nil
}

// KeyEvents is a cqrs.EventBusConfig.OnPublish: as KeyCommands, for events.
func KeyEvents(p cqrs.OnEventSendParams) error {
	setPartitionKey(p.Event, p.Message)
	return nil
}

func setPartitionKey(v any, msg *message.Message) {
	if k, ok := v.(PartitionKeyer); ok {
		msg.Metadata.Set(defaults.PartitionKey, k.PartitionKey())
	}
}
