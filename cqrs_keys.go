package durablestreams

import (
	"github.com/ThreeDotsLabs/watermill/components/cqrs"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/durablestreams/watermill-durablestreams/internal/defaults"
)

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
