package group

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
	"github.com/durablestreams/watermill-durablestreams/internal/reader"
)

// ownerProducerID is the Producer-Id of every fenced write on an
// ownership stream: one producer per stream, whose epoch is the
// ownership generation, so a claim at a higher epoch fences every
// earlier owner on the server itself.
const ownerProducerID = "owner"

// ownerRecord is one record of an ownership stream. The epoch is in the
// body because reads do not return producer headers.
type ownerRecord struct {
	Owner string `json:"owner"`
	// Claim is random per claim: it tells two claims of one member apart.
	Claim string `json:"claim"`
	// Inc is the owner's incarnation (random per Join): it tells a
	// member's own claims from those of another instance with its ID.
	// Records of earlier versions have none ("", an unknown incarnation).
	Inc      string          `json:"inc,omitempty"`
	Epoch    int64           `json:"epoch"`
	Position json.RawMessage `json:"pos,omitempty"`
	Released bool            `json:"released,omitempty"`
	// Log names the position log of this epoch the owner writes to now
	// (root records only: claims at 0, one record per rotation).
	Log int `json:"log,omitempty"`
}

// memberRecord is one record of the members stream.
type memberRecord struct {
	Member string `json:"m"`
	// Kind is join, hb (heartbeat), leave or release (a hint that a
	// stream is free, so that its next owner claims it at once).
	Kind   string `json:"k"`
	Stream string `json:"s,omitempty"`
	// Inc is the incarnation of the member (random per Join): a leave or
	// heartbeat of one incarnation of an ID says nothing about another.
	// Records of earlier versions have none ("", an unknown incarnation).
	Inc string `json:"i,omitempty"`
	// Sync, on a heartbeat, is a nonce the member waits to read back:
	// once it has, it has read every record appended before it.
	Sync string `json:"y,omitempty"`
}

const (
	kindJoin    = "join"
	kindBeat    = "hb"
	kindLeave   = "leave"
	kindRelease = "release"
)

// post sends one JSON record, with producer headers when epoch >= 0. It
// says, as protocol.Client.Send does, whether the request was written out
// before a transport error.
func post(ctx context.Context, c *protocol.Client, url string, record any, epoch, seq int64) (status int, h http.Header, written bool, err error) {
	body, err := json.Marshal([]any{record})
	if err != nil {
		return 0, nil, false, err
	}
	ctx, cancel := c.WithTimeout(ctx)
	defer cancel()
	req, err := c.NewRequest(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, false, err
	}
	req.Header.Set("Content-Type", protocol.ContentTypeJSON)
	if epoch >= 0 {
		req.Header.Set(protocol.HeaderProducerID, ownerProducerID)
		req.Header.Set(protocol.HeaderProducerEpoch, strconv.FormatInt(epoch, 10))
		req.Header.Set(protocol.HeaderProducerSeq, strconv.FormatInt(seq, 10))
	}
	resp, written, err := c.Send(req)
	if err != nil {
		return 0, nil, written, fmt.Errorf("append to %s: %w", protocol.RedactURL(url), err)
	}
	protocol.DrainClose(resp.Body)
	return resp.StatusCode, resp.Header, true, nil
}

// statusError is the error of an answer the caller does not take.
func statusError(method, url string, status int, h http.Header) *protocol.HTTPError {
	return &protocol.HTTPError{Method: method, URL: protocol.RedactURL(url), StatusCode: status, RetryAfter: protocol.RetryAfter(h, time.Minute)}
}

// fencedPost appends record at (epoch, seq) under protocol.Retry: a repeat
// carries the same producer headers, so the server takes it at most once.
// It returns the final outcome; failed comes with the error, which matches
// protocol.ErrOutcomeUnknown when a try may have been written.
func fencedPost(ctx context.Context, c *protocol.Client, policy protocol.RetryPolicy, url string, record ownerRecord, seq int64) (outcome, string, error) {
	o, reason := failed, ""
	err := protocol.Retry(ctx, policy, func(int) protocol.Try {
		status, h, written, err := post(ctx, c, url, record, record.Epoch, seq)
		if err != nil {
			o, reason = failed, ""
			return protocol.TransportTry(err, written)
		}
		o, reason = classify(status, h)
		switch o {
		case retry:
			return protocol.StatusTry(statusError(http.MethodPost, url, status, h))
		case failed:
			return protocol.Try{Err: statusError(http.MethodPost, url, status, h)}
		}
		return protocol.Try{}
	})
	if err != nil {
		return failed, reason, err
	}
	return o, reason, nil
}

// appendBestEffort appends an unfenced record to the members stream,
// retrying transient failures under policy. Duplicates are harmless there.
func appendBestEffort(ctx context.Context, c *protocol.Client, policy protocol.RetryPolicy, url string, record memberRecord) error {
	return protocol.RetryIdempotent(ctx, policy, func() protocol.Try {
		status, h, written, err := post(ctx, c, url, record, -1, 0)
		switch {
		case err != nil:
			return protocol.TransportTry(err, written)
		case status >= 200 && status < 300:
			return protocol.Try{}
		}
		return protocol.StatusTry(statusError(http.MethodPost, url, status, h))
	})
}

// readOwnerRecords reads every record of an ownership stream (a missing
// stream has none).
func readOwnerRecords(ctx context.Context, c *protocol.Client, policy protocol.RetryPolicy, url string) ([]ownerRecord, error) {
	r, err := reader.New(reader.Config{URL: url, Client: c, RetryPolicy: policy, StopAtTail: true})
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var out []ownerRecord
	for {
		chunk, err := r.Next(ctx)
		if errors.Is(err, io.EOF) || errors.Is(err, protocol.ErrStreamNotFound) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read ownership of %s: %w", protocol.RedactURL(url), err)
		}
		data, err := chunk.ReadData(reader.DefaultMaxBodyBytes)
		if err != nil {
			return nil, fmt.Errorf("read ownership of %s: %w", protocol.RedactURL(url), err)
		}
		if len(data) > 0 {
			var recs []ownerRecord
			if err := json.Unmarshal(data, &recs); err != nil {
				return nil, fmt.Errorf("ownership record in %s: %w", protocol.RedactURL(url), err)
			}
			out = append(out, recs...)
		}
		if chunk.Closed {
			return out, nil
		}
	}
}

// current is the ownership state a stream's records describe: the last
// record of the highest epoch. Records of a lower epoch written later can
// only come from a zombie the server forgot to fence (producer state
// cleanup, §5.2.1); they are ignored.
func current(recs []ownerRecord) (ownerRecord, bool) {
	var cur ownerRecord
	found := false
	for _, r := range recs {
		if !found || r.Epoch >= cur.Epoch {
			cur, found = r, true
		}
	}
	return cur, found
}

// currentBefore is the ownership state before epoch: the last record of
// the highest epoch below it. Once a claim at epoch has landed, no record
// of an earlier epoch can, so this is final.
func currentBefore(recs []ownerRecord, epoch int64) (ownerRecord, bool) {
	var lower []ownerRecord
	for _, r := range recs {
		if r.Epoch < epoch {
			lower = append(lower, r)
		}
	}
	return current(lower)
}

// lastPosition is the last position in a position log (nil if none).
func lastPosition(ctx context.Context, c *protocol.Client, policy protocol.RetryPolicy, url string) (json.RawMessage, error) {
	recs, err := readOwnerRecords(ctx, c, policy, url)
	if err != nil {
		return nil, err
	}
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].Position != nil {
			return recs[i].Position, nil
		}
	}
	return nil, nil
}

// closeLog closes a position log, so that every later write of its
// owner gets 409 Stream-Closed: that is how a new owner fences the old
// one's position writes. A missing log has nothing to fence.
func closeLog(ctx context.Context, c *protocol.Client, policy protocol.RetryPolicy, url string) error {
	return protocol.RetryIdempotent(ctx, policy, func() protocol.Try {
		return closeOnce(ctx, c, url)
	})
}

func closeOnce(ctx context.Context, c *protocol.Client, url string) protocol.Try {
	ctx, cancel := c.WithTimeout(ctx)
	defer cancel()
	req, err := c.NewRequest(ctx, http.MethodPost, url, nil)
	if err != nil {
		return protocol.Try{Err: err}
	}
	req.Header.Set("Content-Type", protocol.ContentTypeJSON)
	req.Header.Set(protocol.HeaderClosed, "true")
	resp, written, err := c.Send(req)
	if err != nil {
		return protocol.TransportTry(fmt.Errorf("close %s: %w", protocol.RedactURL(url), err), written)
	}
	protocol.DrainClose(resp.Body)
	switch resp.StatusCode {
	case http.StatusNoContent, http.StatusOK, http.StatusNotFound:
		return protocol.Try{}
	case http.StatusConflict:
		return protocol.Try{} // closed already (a rival claimer)
	}
	return protocol.StatusTry(statusError(http.MethodPost, url, resp.StatusCode, resp.Header))
}

// deleteLog drops a position log no root record names any more; failing
// only costs space.
func deleteLog(ctx context.Context, c *protocol.Client, url string) {
	ctx, cancel := c.WithTimeout(ctx)
	defer cancel()
	req, err := c.NewRequest(ctx, http.MethodDelete, url, nil)
	if err != nil {
		return
	}
	if resp, err := c.Do(req); err == nil {
		protocol.DrainClose(resp.Body)
	}
}

// claimOf finds the first record at epoch: the claim that won it.
func claimOf(recs []ownerRecord, epoch int64) (ownerRecord, bool) {
	for _, r := range recs {
		if r.Epoch == epoch {
			return r, true
		}
	}
	return ownerRecord{}, false
}
