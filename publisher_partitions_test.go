package durablestreams_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	ds "github.com/durablestreams/watermill-durablestreams"
	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
	"github.com/durablestreams/watermill-durablestreams/internal/group"
)

// keyOf returns a partition key that goes to partition part of n.
func keyOf(part, n int) string {
	for i := 0; ; i++ {
		k := "key" + strconv.Itoa(i)
		if group.Partition(k, n) == part {
			return k
		}
	}
}

// partitionStream is the URL of partition part of n of topic.
func partitionStream(base, topic string, part, n int) string {
	return base + "/" + group.StreamName(topic, part, n)
}

// TestPartitionedPublishWritesNothingWhenAMessageIsBad: a message that
// fails to marshal or validate fails the whole call before any partition
// is written, whichever partition it goes to.
func TestPartitionedPublishWritesNothingWhenAMessageIsBad(t *testing.T) {
	for name, bad := range map[string]func(key string) *message.Message{
		"marshal": func(key string) *message.Message {
			msg := message.NewMessage(watermill.NewUUID(), []byte(`not json`))
			msg.Metadata.Set(partitionKey, key)
			return msg
		},
		"validate": func(key string) *message.Message {
			msg := message.NewMessage(watermill.NewUUID(), []byte(`"`+strings.Repeat("x", 2048)+`"`))
			msg.Metadata.Set(partitionKey, key)
			return msg
		},
	} {
		for _, async := range []bool{false, true} {
			t.Run(name+"/async="+strconv.FormatBool(async), func(t *testing.T) {
				pub, base := newTestPublisher(t, ds.PublisherConfig{Partitions: 2, Marshaler: ds.RawJSONMarshaler{}, MaxBatchBytes: 1024, Async: async})
				good := message.NewMessage(watermill.NewUUID(), []byte(`"good"`)) // no key: partition 0
				err := pub.Publish("t", good, bad(keyOf(1, 2)))
				require.Error(t, err)
				var pe *ds.PublishError
				require.False(t, errors.As(err, &pe), "nothing was appended: %v", err)
				require.NoError(t, pub.Publish("t", message.NewMessage(watermill.NewUUID(), []byte(`"later"`))))
				require.NoError(t, pub.Flush(context.Background()))
				got := readJSONStream(t, base+"/t.p0")
				require.Len(t, got, 1, "the good message of the failed call was written: %s", got)
				require.JSONEq(t, `"later"`, string(got[0]))
			})
		}
	}
}

// TestPartitionedPublishErrorCoversTheWholeCall: a synchronous partitioned
// Publish whose messages fail in several partitions returns one
// *PublishError with the call's messages in the call's order, each failed
// message's error naming its partition stream, and the error says
// "durablestreams:" once.
func TestPartitionedPublishErrorCoversTheWholeCall(t *testing.T) {
	base := dstest.StreamURL(t)
	const topic, n = "orders", 4
	pub := partitionedPublisher(t, base, n)
	// The producers of partitions 1 and 2 are started; another Publisher
	// closes both streams behind their back.
	require.NoError(t, pub.Publish(topic, keyed(keyOf(1, n), 0), keyed(keyOf(2, n), 0)))
	plain, err := ds.NewPublisher(ds.PublisherConfig{BaseURL: base}, nil)
	require.NoError(t, err)
	defer plain.Close()
	for _, part := range []int{1, 2} {
		_, err = plain.CloseStream(context.Background(), group.StreamName(topic, part, n), nil)
		require.NoError(t, err)
	}

	msgs := []*message.Message{
		keyed(keyOf(0, n), 1), keyed(keyOf(2, n), 2), keyed(keyOf(0, n), 3),
		keyed(keyOf(1, n), 4), keyed(keyOf(3, n), 5),
	}
	err = pub.Publish(topic, msgs...)
	require.Error(t, err)
	var pe *ds.PublishError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, topic, pe.Topic)
	require.Len(t, pe.UUIDs, len(msgs))
	for i, msg := range msgs {
		require.Equal(t, msg.UUID, pe.UUIDs[i], "message %d", i)
	}
	require.Equal(t, []int{0, 2, 4}, pe.Acknowledged())
	for i, stream := range map[int]string{1: "orders.p2", 3: "orders.p1"} {
		require.ErrorIs(t, pe.Errs[i], ds.ErrStreamClosed, "message %d", i)
		require.Contains(t, pe.Errs[i].Error(), strconv.Quote(stream), "message %d names its partition", i)
	}
	for _, i := range pe.Acknowledged() {
		require.NotEmpty(t, msgs[i].Metadata.Get(ds.MetadataOffset), "acknowledged message %d has its offset", i)
	}
	msg := err.Error()
	t.Log(msg)
	require.True(t, strings.HasPrefix(msg, "durablestreams: "), msg)
	require.Equal(t, 1, strings.Count(msg, "durablestreams:"), msg)
	require.Len(t, readJSONStream(t, partitionStream(base, topic, 0, n)), 2)
}
