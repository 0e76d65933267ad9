package partition

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
	"github.com/durablestreams/watermill-durablestreams/internal/reader"
	"github.com/durablestreams/watermill-durablestreams/retry"
)

// Topic names what Ensure touches for one topic.
type Topic struct {
	Name string
	// RecordURL is the URL of RecordName(Name): a closed stream whose one
	// record is the count.
	RecordURL string
	// StreamURL is the URL of the topic's own stream. A topic of more
	// than one partition has none: Ensure creates it closed and empty, so
	// that a writer that does not know of the partitions fails instead of
	// writing where no member reads.
	StreamURL string
}

type record struct {
	Partitions int `json:"partitions"`
}

// Ensure records that t has n partitions, or checks the record already
// there. The record is created closed, with its content in the PUT, so it
// can never change; whoever creates it first sets the count, and everyone
// else reads it back and compares. A topic of more than one partition also
// gets its own stream sealed (closed, empty); a topic whose own stream
// already holds messages cannot become partitioned (a *MismatchError):
// they would never be read.
func Ensure(ctx context.Context, c *protocol.Client, policy retry.Policy, t Topic, n int) error {
	if n < 1 || n > Max {
		return fmt.Errorf("%w: topic %q: %d partitions, want 1..%d", protocol.ErrInvalidConfig, t.Name, n, Max)
	}
	got, ok, err := Load(ctx, c, policy, t.RecordURL)
	if err != nil {
		return err
	}
	if !ok {
		if n > 1 {
			if err := checkUnwritten(ctx, c, t); err != nil {
				return err
			}
		}
		if err := putClosed(ctx, c, policy, t.RecordURL, record{Partitions: n}); err != nil {
			return err
		}
		if got, ok, err = Load(ctx, c, policy, t.RecordURL); err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("partition record of topic %q at %s vanished after it was created", t.Name, protocol.RedactURL(t.RecordURL))
		}
	}
	if got != n {
		return &MismatchError{Topic: t.Name, Recorded: got, Configured: n}
	}
	if n > 1 {
		return seal(ctx, c, policy, t)
	}
	return nil
}

// Load reads a topic's recorded partition count; ok is false when none is
// recorded (the topic is a single stream). A stream there that holds no
// partition record is protocol.ErrStreamConflict.
func Load(ctx context.Context, c *protocol.Client, policy retry.Policy, url string) (n int, ok bool, err error) {
	data, found, err := readAll(ctx, c, policy, url)
	if err != nil || !found {
		return 0, false, err
	}
	var recs []record
	if err := json.Unmarshal(data, &recs); err != nil || len(recs) != 1 || recs[0].Partitions < 1 || recs[0].Partitions > Max {
		// A stream of another kind sits where the record belongs (a
		// topic named "<topic>.partitions" written before such names were
		// reserved, or another writer): a conflict with an existing
		// stream, as a 409 on the record's PUT is.
		return 0, false, fmt.Errorf("%w: unreadable partition record at %s (a stream of another kind is there): %.200q", protocol.ErrStreamConflict, protocol.RedactURL(url), data)
	}
	return recs[0].Partitions, true, nil
}

// holdsData: what readAll returned is more than empty JSON-mode reads.
func holdsData(data []byte) bool {
	rest := bytes.TrimSpace(data)
	for len(rest) > 0 {
		if !bytes.HasPrefix(rest, []byte("[")) {
			return true
		}
		rest = bytes.TrimSpace(rest[1:])
		if !bytes.HasPrefix(rest, []byte("]")) {
			return true
		}
		rest = bytes.TrimSpace(rest[1:])
	}
	return false
}

// readAll reads what a stream holds now; found is false when it does not
// exist.
func readAll(ctx context.Context, c *protocol.Client, policy retry.Policy, url string) (data []byte, found bool, err error) {
	r, err := reader.New(reader.Config{URL: url, Client: c, RetryPolicy: policy, StopAtTail: true})
	if err != nil {
		return nil, false, err
	}
	defer r.Close()
	for {
		chunk, err := r.Next(ctx)
		if errors.Is(err, protocol.ErrStreamNotFound) {
			return nil, false, nil
		}
		if errors.Is(err, io.EOF) {
			return data, true, nil
		}
		if err != nil {
			return nil, false, fmt.Errorf("read %s: %w", protocol.RedactURL(url), err)
		}
		part, err := chunk.ReadData(reader.DefaultMaxBodyBytes)
		if err != nil {
			return nil, false, fmt.Errorf("read %s: %w", protocol.RedactURL(url), err)
		}
		data = append(data, part...)
		if chunk.Closed {
			return data, true, nil
		}
	}
}

// checkUnwritten refuses to partition a topic whose own stream holds
// messages: they were published without partitions, and no member of a
// group reads that stream once the topic is partitioned.
func checkUnwritten(ctx context.Context, c *protocol.Client, t Topic) error {
	if t.StreamURL == "" {
		return nil
	}
	data, found, err := readAll(ctx, c, retry.Policy{MaxAttempts: 1}, t.StreamURL)
	if err != nil {
		return fmt.Errorf("check the stream of topic %q before partitioning it: %w", t.Name, err)
	}
	if found && holdsData(data) {
		return &MismatchError{Topic: t.Name, Recorded: 1, Reason: fmt.Sprintf(
			"its stream %s already holds messages published without partitions; a partitioned topic's members never read that stream, so it cannot become partitioned (publish to a new topic name)",
			protocol.RedactURL(t.StreamURL))}
	}
	return nil
}

// seal closes the topic's own stream (creating it closed and empty), so
// that a Publisher without Partitions gets a conflict instead of writing
// where no member reads. An open stream there is closed if it is empty.
func seal(ctx context.Context, c *protocol.Client, policy retry.Policy, t Topic) error {
	if t.StreamURL == "" {
		return nil
	}
	err := putClosed(ctx, c, policy, t.StreamURL, nil)
	if !errors.Is(err, protocol.ErrStreamConflict) {
		return err
	}
	// It exists open (or closed with another content type: then the
	// close below is a no-op). An empty one is ours to close; one with
	// messages was written without partitions meanwhile.
	if err := checkUnwritten(ctx, c, t); err != nil {
		return err
	}
	return c.CloseStream(ctx, policy, t.StreamURL)
}

// putClosed creates a closed JSON stream whose whole content is record
// (nil: empty). An existing closed stream answers 200 (whatever its
// content), an open one 409; PUT is idempotent, so transient failures are
// retried.
func putClosed(ctx context.Context, c *protocol.Client, policy retry.Policy, url string, rec any) error {
	var body []byte
	if rec != nil {
		var err error
		if body, err = json.Marshal([]any{rec}); err != nil {
			return err
		}
	}
	return protocol.RetryIdempotent(ctx, policy, c.RefusedPoll, func() protocol.Try {
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
		return protocol.TransportTry(fmt.Errorf("create %s: %w", protocol.RedactURL(url), err), written)
	}
	protocol.DrainClose(resp.Body)
	switch resp.StatusCode {
	case http.StatusOK, http.StatusCreated, http.StatusNoContent:
		return protocol.Try{}
	case http.StatusConflict:
		return protocol.Try{Err: fmt.Errorf("%w: %s exists but is open or of another type", protocol.ErrStreamConflict, protocol.RedactURL(url))}
	}
	return c.StatusTry(http.MethodPut, protocol.RedactURL(url), resp.StatusCode, "", protocol.RetryAfter(resp.Header, time.Minute))
}
