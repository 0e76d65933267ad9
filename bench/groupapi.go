package main

import (
	"net/http"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	durablestreams "github.com/durablestreams/watermill-durablestreams"
	"github.com/durablestreams/watermill-durablestreams/internal/group"
	"github.com/durablestreams/watermill-durablestreams/internal/partition"
)

// This file is the bench's only use of the consumer-group API (issue 14),
// so that a rename of those types touches it alone.

// defaultSessionTimeout and defaultHeartbeatInterval are the library's
// defaults: what users get.
const (
	defaultSessionTimeout    = group.DefaultSessionTimeout
	defaultHeartbeatInterval = group.DefaultHeartbeatInterval
)

// groupMember is one member of a consumer group that shares the work.
type groupMember interface {
	message.Subscriber
}

// newGroupMember returns a member of group on the server at baseURL. A nil
// hc means the library's default HTTP client; zero timings the defaults.
func newGroupMember(baseURL, group, memberID string, hc *http.Client, session, heartbeat time.Duration) (groupMember, error) {
	return durablestreams.NewSubscriber(durablestreams.SubscriberConfig{
		BaseURL:           baseURL,
		ConsumerGroup:     group,
		ClientConfig:      durablestreams.ClientConfig{HTTPClient: hc},
		MemberID:          memberID,
		SessionTimeout:    session,
		HeartbeatInterval: heartbeat,
	}, nil)
}

// newKeyedPublisher returns an async publisher that spreads each topic over
// partitions streams by message UUID (1: the topic's own stream).
func newKeyedPublisher(baseURL string, partitions int) (message.Publisher, error) {
	return durablestreams.NewPublisher(durablestreams.PublisherConfig{
		BaseURL:       baseURL,
		Async:         true,
		Partitions:    partitions,
		PartitionFunc: func(_ string, msg *message.Message) string { return msg.UUID },
	}, nil)
}

// partitionStreams are the streams of a topic of n partitions, plus the
// one that records n: what a run deletes afterwards.
func partitionStreams(topic string, n int) []string {
	return append(partition.StreamNames(topic, n), partition.RecordName(topic))
}

// partitionStreamName is the stream (a topic for a Subscriber without a
// group) of partition i of a topic of n partitions.
func partitionStreamName(topic string, i, n int) string { return partition.StreamName(topic, i, n) }

// partitionKeys returns one partition key per partition of a topic of n
// partitions: keys[i] goes to partition i.
func partitionKeys(n int) []string {
	keys := make([]string, n)
	found := 0
	for k := 0; found < n; k++ {
		key := "key-" + strconv.Itoa(k)
		if i := partition.Of(key, n); keys[i] == "" {
			keys[i] = key
			found++
		}
	}
	return keys
}

// newPartitionedPublisher returns an async publisher that spreads each
// topic over partitions streams by the message's partition_key metadata
// (the Publisher's default PartitionKey).
func newPartitionedPublisher(baseURL string, partitions int) (message.Publisher, error) {
	return durablestreams.NewPublisher(durablestreams.PublisherConfig{
		BaseURL:    baseURL,
		Async:      true,
		Partitions: partitions,
	}, nil)
}
