package systemtest

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	ds "github.com/durablestreams/watermill-durablestreams"
	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
	"github.com/durablestreams/watermill-durablestreams/internal/partition"
)

// keyOf returns a partition key that goes to partition part of n.
func keyOf(part, n int) string {
	for i := 0; ; i++ {
		k := "key" + strconv.Itoa(i)
		if partition.Of(k, n) == part {
			return k
		}
	}
}

// partitionStream is the URL of partition part of n of topic.
func partitionStream(base, topic string, part, n int) string {
	return base + "/" + partition.StreamName(topic, part, n)
}

// streamStatus is the HTTP status of a HEAD of streamURL.
func streamStatus(t *testing.T, streamURL string) int {
	t.Helper()
	resp, err := http.Head(streamURL)
	require.NoError(t, err)
	_ = resp.Body.Close()
	return resp.StatusCode
}

// endLogger reports, on ended, each stream whose group subscription ended
// on its own (the stream was closed).
type endLogger struct {
	watermill.NopLogger
	ended chan string
}

func (l endLogger) Info(msg string, fields watermill.LogFields) {
	if strings.HasPrefix(msg, "The subscription of an owned stream ended") {
		stream, _ := fields["stream"].(string)
		l.ended <- stream
	}
}

func (l endLogger) With(watermill.LogFields) watermill.LoggerAdapter { return l }

// TestPartitionedCloseStreamClosesEveryPartition: CloseStream on a
// partitioned topic writes the final message to its key's partition and
// closes every partition stream (and writes nothing to the topic's own,
// sealed stream); later publishes to any partition, by this Publisher or another,
// fail with ErrStreamClosed; a group member reads the final message and
// sees every partition end; a second CloseStream succeeds.
func TestPartitionedCloseStreamClosesEveryPartition(t *testing.T) {
	base := dstest.StreamURL(t)
	const topic, n = "orders", 4
	pub := partitionedPublisher(t, base, n)
	require.NoError(t, pub.Publish(topic, keyed(keyOf(1, n), 1)))

	final := keyed(keyOf(3, n), 2)
	offset, err := pub.CloseStream(context.Background(), topic, final)
	require.NoError(t, err)
	assert.Empty(t, offset, "a partitioned topic has no single final offset")
	assert.Equal(t, http.StatusOK, streamStatus(t, base+"/"+topic), "the topic's own stream stays sealed")
	assert.Empty(t, readJSONStream(t, base+"/"+topic), "CloseStream wrote to the topic's own stream, which no partition reads")
	got := readJSONStream(t, partitionStream(base, topic, 3, n))
	require.Len(t, got, 1, "the final message is the last of its key's partition")

	other := partitionedPublisher(t, base, n)
	for part := range n {
		for name, p := range map[string]*ds.Publisher{"same": pub, "other": other} {
			err := p.Publish(topic, keyed(keyOf(part, n), 3))
			require.ErrorIs(t, err, ds.ErrStreamClosed, "%s publisher, partition %d", name, part)
		}
	}
	_, err = pub.CloseStream(context.Background(), topic, nil)
	require.NoError(t, err, "CloseStream is idempotent")
	_, err = other.CloseStream(context.Background(), topic, nil)
	require.NoError(t, err, "a close-only CloseStream of a closed topic succeeds")

	logger := endLogger{ended: make(chan string, n)}
	sub, err := ds.NewSubscriber(ds.SubscriberConfig{
		BaseURL: base, ConsumerGroup: "g", Partitions: n,
		SessionTimeout: 2 * time.Second, HeartbeatInterval: 200 * time.Millisecond,
	}, logger)
	require.NoError(t, err)
	defer func() { assert.NoError(t, sub.Close()) }() // also when Subscribe fails
	msgs, err := sub.Subscribe(context.Background(), topic)
	require.NoError(t, err)
	var mu sync.Mutex
	seen := map[string]bool{}
	drained := make(chan struct{})
	defer func() {
		assert.NoError(t, sub.Close()) // idempotent
		<-drained                      // Close closes msgs, which ends the consumer
	}()
	go func() {
		defer close(drained)
		for msg := range msgs {
			mu.Lock()
			seen[msg.UUID] = true
			mu.Unlock()
			msg.Ack()
		}
	}()
	ended := map[string]bool{}
	timeout := time.After(30 * time.Second)
	for len(ended) < n {
		select {
		case stream := <-logger.ended:
			ended[stream] = true
		case <-timeout:
			t.Fatalf("the group saw the end of %d of %d partitions: %v", len(ended), n, ended)
		}
	}
	for part := range n {
		assert.True(t, ended[partition.StreamName(topic, part, n)], "partition %d", part)
	}
	mu.Lock()
	defer mu.Unlock()
	assert.True(t, seen[final.UUID], "the group never got the final message")
}

// TestPartitionedCloseStreamBadFinalClosesNothing: a final message that
// does not validate (too large) fails CloseStream before any partition is
// closed.
func TestPartitionedCloseStreamBadFinalClosesNothing(t *testing.T) {
	pub, base := newTestPublisher(t, ds.PublisherConfig{Partitions: 2, Marshaler: ds.RawJSONMarshaler{}, MaxBatchBytes: 1024})
	bad := message.NewMessage(watermill.NewUUID(), []byte(`"`+strings.Repeat("x", 2048)+`"`))
	bad.Metadata.Set(partitionKey, keyOf(1, 2))
	_, err := pub.CloseStream(context.Background(), "t", bad)
	require.ErrorIs(t, err, ds.ErrMessageTooLarge)
	require.NoError(t, pub.Publish("t", message.NewMessage(watermill.NewUUID(), []byte(`1`))), "partition 0 was closed")
	good := message.NewMessage(watermill.NewUUID(), []byte(`2`))
	good.Metadata.Set(partitionKey, keyOf(1, 2))
	require.NoError(t, pub.Publish("t", good), "partition 1 was closed")
	require.Len(t, readJSONStream(t, base+"/t.p1"), 1)
}

// TestPartitionedCloseStreamPartialFailureNamesTheClosedPartitions: when a
// partition cannot be closed, the others are closed anyway and the error
// names which are closed and which are not; once the cause is gone,
// CloseStream again closes the rest.
func TestPartitionedCloseStreamPartialFailureNamesTheClosedPartitions(t *testing.T) {
	base := dstest.StreamURL(t)
	const topic, n = "orders", 3
	// Partition 1 exists with another content type: this Publisher cannot
	// write or close it.
	req, err := http.NewRequest(http.MethodPut, partitionStream(base, topic, 1, n), nil)
	require.NoError(t, err)
	req.Header.Set("Content-Type", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Less(t, resp.StatusCode, 300)

	pub := partitionedPublisher(t, base, n)
	_, err = pub.CloseStream(context.Background(), topic, nil)
	require.ErrorIs(t, err, ds.ErrContentTypeMismatch)
	msg := err.Error()
	t.Log(msg)
	assert.True(t, strings.HasPrefix(msg, "durablestreams: "), msg)
	assert.Equal(t, 1, strings.Count(msg, "durablestreams:"), msg)
	assert.Contains(t, msg, `1 of 3 partition(s) not closed (orders.p1); closed: orders.p0, orders.p2`)
	require.ErrorIs(t, pub.Publish(topic, keyed(keyOf(0, n), 1)), ds.ErrStreamClosed)
	require.ErrorIs(t, pub.Publish(topic, keyed(keyOf(2, n), 1)), ds.ErrStreamClosed)

	// The partition is deleted and created again by this Publisher: a
	// second CloseStream closes it and finds the others closed already.
	req, err = http.NewRequest(http.MethodDelete, partitionStream(base, topic, 1, n), nil)
	require.NoError(t, err)
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	_, err = pub.CloseStream(context.Background(), topic, nil)
	require.NoError(t, err)
	require.ErrorIs(t, pub.Publish(topic, keyed(keyOf(1, n), 1)), ds.ErrStreamClosed)
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
	for _, part := range []int{1, 2} {
		httpDo(t, "POST", partitionStream(base, topic, part, n), "application/json", "", "Stream-Closed", "true")
	}

	msgs := []*message.Message{
		keyed(keyOf(0, n), 1), keyed(keyOf(2, n), 2), keyed(keyOf(0, n), 3),
		keyed(keyOf(1, n), 4), keyed(keyOf(3, n), 5),
	}
	err := pub.Publish(topic, msgs...)
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

// TestPlainPublisherOnAPartitionedTopicIsRefused: a Publisher without
// Partitions on a topic recorded as partitioned writes nothing (the
// topic's own stream is sealed, so no message lands where no member
// reads) and gets ErrPartitionMismatch naming the recorded count; the
// messages the partitioned Publisher wrote are all still read by a group.
func TestPlainPublisherOnAPartitionedTopicIsRefused(t *testing.T) {
	base := dstest.StreamURL(t)
	const n = 3
	pub := partitionedPublisher(t, base, n)
	require.NoError(t, pub.Publish("orders", keyed(keyOf(1, n), 1)))

	plain, err := ds.NewPublisher(ds.PublisherConfig{BaseURL: base}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = plain.Close() })
	for range 2 { // the second Publish asks the server again: still refused
		err = plain.Publish("orders", keyed("k", 2))
		require.ErrorIs(t, err, ds.ErrPartitionMismatch)
		require.ErrorContains(t, err, "Partitions = 3")
	}
	assert.Empty(t, readJSONStream(t, base+"/orders"), "the topic's own stream stays empty")
	require.Len(t, readJSONStream(t, partitionStream(base, "orders", 1, n)), 1)
}
