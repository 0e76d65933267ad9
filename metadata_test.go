package durablestreams_test

import (
	"testing"

	"github.com/ThreeDotsLabs/watermill/components/cqrs"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	ds "github.com/durablestreams/watermill-durablestreams"
)

type keyedCommand struct{ ID string }

func (c keyedCommand) PartitionKey() string { return c.ID }

// TestKeyCommandsAndEventsSetThePartitionKey: the CQRS hooks put a
// PartitionKeyer's key where a Publisher with default settings reads it,
// and leave other messages alone.
func TestKeyCommandsAndEventsSetThePartitionKey(t *testing.T) {
	cmd := message.NewMessage("1", nil)
	require.NoError(t, ds.KeyCommands(cqrs.CommandBusOnSendParams{Command: keyedCommand{ID: "room-7"}, Message: cmd}))
	require.Equal(t, "room-7", cmd.Metadata.Get("partition_key"))

	event := message.NewMessage("2", nil)
	require.NoError(t, ds.KeyEvents(cqrs.OnEventSendParams{Event: &keyedCommand{ID: "room-8"}, Message: event}))
	require.Equal(t, "room-8", event.Metadata.Get("partition_key"))

	plain := message.NewMessage("3", nil)
	require.NoError(t, ds.KeyEvents(cqrs.OnEventSendParams{Event: struct{}{}, Message: plain}))
	require.Empty(t, plain.Metadata.Get("partition_key"))
}
