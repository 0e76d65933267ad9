package group

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"strconv"

	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
	"github.com/durablestreams/watermill-durablestreams/internal/reader"
)

// MaxPartitions bounds the partitions of one topic.
const MaxPartitions = 1024

// Partition maps a key to one of n partitions: FNV-1a (32 bit) of the
// key's bytes, modulo n. It is stable across processes, versions and
// languages (FNV-1a is specified byte for byte), so every publisher puts a
// key in the same partition. The empty key (a message without one) goes to
// partition 0, the stable default.
func Partition(key string, n int) int {
	if n <= 1 || key == "" {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return int(h.Sum32() % uint32(n))
}

// StreamName is the stream of partition i of topic: the topic itself when
// it has one partition (so a topic without partitions is unchanged), else
// "<topic>.p<i>".
func StreamName(topic string, i, n int) string {
	if n <= 1 {
		return topic
	}
	return topic + ".p" + strconv.Itoa(i)
}

// StreamNames lists the streams of a topic of n partitions.
func StreamNames(topic string, n int) []string {
	out := make([]string, max(n, 1))
	for i := range out {
		out[i] = StreamName(topic, i, n)
	}
	return out
}

// PartitionsStreamName is the stream that records a topic's partition
// count: "<topic>.partitions", next to the partitions' streams.
func PartitionsStreamName(topic string) string { return topic + ".partitions" }

// ErrPartitionMismatch means the topic's partition count recorded on the server
// differs from the configured one. The error is a *PartitionMismatchError.
var ErrPartitionMismatch = errors.New("topic partition count mismatch")

// PartitionMismatchError names both counts.
type PartitionMismatchError struct {
	Topic      string
	Recorded   int
	Configured int
}

func (e *PartitionMismatchError) Error() string {
	return fmt.Sprintf("topic %q has %d partitions recorded on the server, configured %d; the count of a topic cannot change", e.Topic, e.Recorded, e.Configured)
}

// Is makes errors.Is(err, ErrPartitionMismatch) true.
func (e *PartitionMismatchError) Is(target error) bool { return target == ErrPartitionMismatch }

type partitionsRecord struct {
	Partitions int `json:"partitions"`
}

// EnsurePartitions records that topic has n partitions, in the stream at
// url (see PartitionsStreamName), or checks the record already there. The
// record is created closed, with its content in the PUT, so it can never
// change; whoever creates it first sets the count, and everyone else reads
// it back and compares.
func EnsurePartitions(ctx context.Context, c *protocol.Client, policy protocol.RetryPolicy, url, topic string, n int) error {
	if n < 1 || n > MaxPartitions {
		return fmt.Errorf("%w: topic %q: %d partitions, want 1..%d", ErrInvalidConfig, topic, n, MaxPartitions)
	}
	if err := putClosed(ctx, c, policy, url, partitionsRecord{Partitions: n}); err != nil {
		return err
	}
	got, ok, err := LoadPartitions(ctx, c, policy, url)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("partition record of topic %q at %s vanished after it was created", topic, protocol.RedactURL(url))
	}
	if got != n {
		return &PartitionMismatchError{Topic: topic, Recorded: got, Configured: n}
	}
	return nil
}

// LoadPartitions reads a topic's recorded partition count; ok is false
// when none is recorded (the topic is a single stream). A stream there
// that holds no partition record is protocol.ErrStreamConflict.
func LoadPartitions(ctx context.Context, c *protocol.Client, policy protocol.RetryPolicy, url string) (n int, ok bool, err error) {
	r, err := reader.New(reader.Config{URL: url, Client: c, RetryPolicy: policy, StopAtTail: true})
	if err != nil {
		return 0, false, err
	}
	defer r.Close()
	var data []byte
	for {
		chunk, err := r.Next(ctx)
		if errors.Is(err, protocol.ErrStreamNotFound) {
			return 0, false, nil
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, false, fmt.Errorf("read partition record %s: %w", protocol.RedactURL(url), err)
		}
		part, err := chunk.ReadData(reader.DefaultMaxBodyBytes)
		if err != nil {
			return 0, false, fmt.Errorf("read partition record %s: %w", protocol.RedactURL(url), err)
		}
		data = append(data, part...)
		if chunk.Closed {
			break
		}
	}
	var recs []partitionsRecord
	if err := json.Unmarshal(data, &recs); err != nil || len(recs) != 1 || recs[0].Partitions < 1 || recs[0].Partitions > MaxPartitions {
		// A stream of another kind sits where the record belongs (a
		// topic named "<topic>.partitions" written before such names were
		// reserved, or another writer): a conflict with an existing
		// stream, as a 409 on the record's PUT is.
		return 0, false, fmt.Errorf("%w: unreadable partition record at %s (a stream of another kind is there): %.200q", protocol.ErrStreamConflict, protocol.RedactURL(url), data)
	}
	return recs[0].Partitions, true, nil
}

// putClosed creates a closed JSON stream whose whole content is record.
// An existing closed stream answers 200 (whatever its content), an open
// one 409; PUT is idempotent, so transient failures are retried.
func putClosed(ctx context.Context, c *protocol.Client, policy protocol.RetryPolicy, url string, record any) error {
	body, err := json.Marshal([]any{record})
	if err != nil {
		return err
	}
	return protocol.RetryIdempotent(ctx, policy, func() protocol.Try {
		return putOnce(ctx, c, url, body)
	})
}

func putOnce(ctx context.Context, c *protocol.Client, url string, body []byte) protocol.Try {
	ctx, cancel := c.WithTimeout(ctx)
	defer cancel()
	req, err := c.NewRequest(ctx, http.MethodPut, url, bytes.NewReader(body))
	if err != nil {
		return protocol.Try{Err: err}
	}
	req.Header.Set("Content-Type", protocol.ContentTypeJSON)
	req.Header.Set(protocol.HeaderClosed, "true")
	resp, written, err := c.Send(req)
	if err != nil {
		return protocol.TransportTry(fmt.Errorf("create partition record %s: %w", protocol.RedactURL(url), err), written)
	}
	protocol.DrainClose(resp.Body)
	switch resp.StatusCode {
	case http.StatusOK, http.StatusCreated, http.StatusNoContent:
		return protocol.Try{}
	case http.StatusConflict:
		return protocol.Try{Err: fmt.Errorf("%w: partition record %s exists but is open or of another type", protocol.ErrStreamConflict, protocol.RedactURL(url))}
	}
	return protocol.StatusTry(statusError(http.MethodPut, url, resp.StatusCode, resp.Header))
}
