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

	"github.com/durablestreams/watermill-durablestreams/internal/jsonscan"
	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
	"github.com/durablestreams/watermill-durablestreams/internal/reader"
	"github.com/durablestreams/watermill-durablestreams/retry"
)

// ownerProducerID is the Producer-Id of every fenced write on an
// ownership stream: one producer per stream, whose epoch is the
// ownership generation, so a claim at a higher epoch fences every
// earlier owner on the server itself.
const ownerProducerID = "owner"

// ownerRecord is one record of an ownership root or of a position log.
// The epoch is in the body because reads do not return producer headers.
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
	// (root records only: 0 in a claim, then one hint record per
	// defaultHintEvery rotations).
	Log int64 `json:"log,omitempty"`
	// Next, in the record that closes a position log, names the log
	// that follows it.
	Next int64 `json:"next,omitempty"`
}

// memberRecord is one record of a members log.
type memberRecord struct {
	Member string `json:"m"`
	// Kind is join, hb (heartbeat), leave, release (a hint that a stream
	// is free, so that its next owner claims it at once) or next (the
	// last record of a members log: the log that follows).
	Kind   string `json:"k"`
	Stream string `json:"s,omitempty"`
	// Inc is the incarnation of the member (random per Join): a leave or
	// heartbeat of one incarnation of an ID says nothing about another.
	Inc string `json:"i,omitempty"`
	// Sync, on a heartbeat, is a nonce the member waits to read back:
	// once it has, it has read every record appended before it.
	Sync string `json:"y,omitempty"`
	// Window, on a next record, is the members log that follows.
	Window int64 `json:"w,omitempty"`
}

const (
	kindJoin    = "join"
	kindBeat    = "hb"
	kindLeave   = "leave"
	kindRelease = "release"
	kindNext    = "next"
)

// problem says why a members record cannot be taken in ("" if it can).
func (r memberRecord) problem() string {
	switch {
	case r.Member == "":
		return "no member"
	case len(r.Member) > MaxNameBytes:
		return "member ID too long"
	}
	switch r.Kind {
	case kindJoin, kindBeat, kindLeave, kindRelease:
		return ""
	case kindNext:
		if r.Window < 0 || r.Window > protocol.MaxInteger {
			return "window out of range"
		}
		return ""
	}
	return "unknown kind"
}

// problem says why an ownership record cannot be taken in ("" if it can).
// maxEpoch is the highest epoch of the records before it (-1 if none): a
// claim is always one more than the epoch it takes over from, so a
// record that jumps further was not written by a member of the group.
func (r ownerRecord) problem(maxEpoch int64) string {
	switch {
	case r.Epoch < 0 || r.Epoch >= protocol.MaxInteger:
		return "epoch out of range"
	case r.Epoch > maxEpoch+1:
		return fmt.Sprintf("epoch %d jumps past %d, the highest before it", r.Epoch, maxEpoch)
	case r.Log < 0 || r.Log >= protocol.MaxInteger || r.Next < 0 || r.Next >= protocol.MaxInteger:
		return "log number out of range"
	case r.Owner == "":
		return "no owner"
	}
	return ""
}

// badRecord is a record of a coordination stream that was skipped.
type badRecord struct {
	raw    []byte
	reason string
}

func (b badRecord) String() string { return fmt.Sprintf("%s: %.200q", b.reason, b.raw) }

// decodeEach decodes the records of a JSON-mode read one by one, so that
// one record that does not parse, or fails check, costs only itself.
func decodeEach[T any](data []byte, check func(T) string) ([]T, []badRecord) {
	elems, err := jsonscan.SplitArray(data)
	if err != nil {
		return nil, []badRecord{{raw: data, reason: "not a JSON array: " + err.Error()}}
	}
	out := make([]T, 0, len(elems))
	var bad []badRecord
	for _, e := range elems {
		var rec T
		if err := json.Unmarshal(e, &rec); err != nil {
			bad = append(bad, badRecord{raw: e, reason: "does not parse: " + err.Error()})
			continue
		}
		if reason := check(rec); reason != "" {
			bad = append(bad, badRecord{raw: e, reason: reason})
			continue
		}
		out = append(out, rec)
	}
	return out, bad
}

// post sends one JSON record, with producer headers when epoch >= 0, and
// closes the stream with it when closing. It says, as
// protocol.Client.Send does, whether the request was written out before
// a transport error.
func post(ctx context.Context, c *protocol.Client, url string, record any, epoch, seq int64, closing bool) (status int, h http.Header, written bool, err error) {
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
	if closing {
		req.Header.Set(protocol.HeaderClosed, "true")
	}
	resp, written, err := c.Send(req)
	if err != nil {
		return 0, nil, written, fmt.Errorf("append to %s: %w", protocol.RedactURL(url), err)
	}
	protocol.DrainClose(resp.Body)
	return resp.StatusCode, resp.Header, true, nil
}

// statusError is the error of an answer the caller does not take.
func statusError(c *protocol.Client, method, url string, status int, h http.Header) error {
	return c.AnswerError(method, protocol.RedactURL(url), status, "", protocol.RetryAfter(h, time.Minute))
}

// statusTry is the protocol.Try of an answer the caller does not take,
// for protocol.Retry to decide on.
func statusTry(c *protocol.Client, method, url string, status int, h http.Header) protocol.Try {
	return c.StatusTry(method, protocol.RedactURL(url), status, "", protocol.RetryAfter(h, time.Minute))
}

// fencedPost appends record at (epoch, seq) under protocol.Retry, closing
// the stream with it when closing: a repeat carries the same producer
// headers, so the server takes it at most once. It returns the final
// outcome; failed comes with the error, which matches
// protocol.ErrOutcomeUnknown when a try may have been written.
func fencedPost(ctx context.Context, c *protocol.Client, policy retry.Policy, url string, record ownerRecord, seq int64, closing bool) (outcome, string, error) {
	o, reason := failed, ""
	err := protocol.Retry(ctx, policy, c.RefusedPoll, func(int) protocol.Try {
		status, h, written, err := post(ctx, c, url, record, record.Epoch, seq, closing)
		if err != nil {
			o, reason = failed, ""
			return protocol.TransportTry(err, written)
		}
		o, reason = classify(status, h)
		switch o {
		case again:
			return statusTry(c, http.MethodPost, url, status, h)
		case failed:
			return protocol.Try{Err: statusError(c, http.MethodPost, url, status, h)}
		}
		return protocol.Try{}
	})
	if err != nil {
		return failed, reason, err
	}
	return o, reason, nil
}

// createLog creates a position log, open. A log that exists closed was
// sealed by a newer owner (see sealNext): the answer is fenced.
func createLog(ctx context.Context, c *protocol.Client, policy retry.Policy, url string) (outcome, string, error) {
	return putStream(ctx, c, policy, url, false)
}

// sealLog creates a position log closed and empty, so that a former owner
// can neither create nor write it: fenced means it exists open (the
// former owner has just created it).
func sealLog(ctx context.Context, c *protocol.Client, policy retry.Policy, url string) (outcome, string, error) {
	return putStream(ctx, c, policy, url, true)
}

func putStream(ctx context.Context, c *protocol.Client, policy retry.Policy, url string, closed bool) (outcome, string, error) {
	o, reason := failed, ""
	err := protocol.RetryIdempotent(ctx, policy, c.RefusedPoll, func() protocol.Try {
		ctx, cancel := c.WithTimeout(ctx)
		defer cancel()
		req, err := c.NewRequest(ctx, http.MethodPut, url, nil)
		if err != nil {
			return protocol.Try{Err: err}
		}
		req.Header.Set("Content-Type", protocol.ContentTypeJSON)
		if closed {
			req.Header.Set(protocol.HeaderClosed, "true")
		}
		resp, written, err := c.Send(req)
		if err != nil {
			return protocol.TransportTry(fmt.Errorf("create %s: %w", protocol.RedactURL(url), err), written)
		}
		protocol.DrainClose(resp.Body)
		o, reason = classifyCreate(resp.StatusCode)
		switch o {
		case again:
			return statusTry(c, http.MethodPut, url, resp.StatusCode, resp.Header)
		case failed:
			return protocol.Try{Err: statusError(c, http.MethodPut, url, resp.StatusCode, resp.Header)}
		}
		return protocol.Try{}
	})
	if err != nil {
		return failed, reason, err
	}
	return o, reason, nil
}

// readRecords reads every record a coordination stream holds now (a
// missing stream has none); closed says it is closed. Records that do
// not parse or fail check are returned apart, for the caller to log.
func readRecords[T any](ctx context.Context, c *protocol.Client, policy retry.Policy, url string, check func(T) string) (recs []T, bad []badRecord, closed bool, err error) {
	r, err := reader.New(reader.Config{URL: url, Client: c, RetryPolicy: policy, StopAtTail: true})
	if err != nil {
		return nil, nil, false, err
	}
	defer r.Close()
	for {
		chunk, err := r.Next(ctx)
		if errors.Is(err, io.EOF) || errors.Is(err, protocol.ErrStreamNotFound) {
			return recs, bad, closed, nil
		}
		if err != nil {
			return nil, nil, false, fmt.Errorf("read %s: %w", protocol.RedactURL(url), err)
		}
		data, err := chunk.ReadData(reader.DefaultMaxBodyBytes)
		if err != nil {
			return nil, nil, false, fmt.Errorf("read %s: %w", protocol.RedactURL(url), err)
		}
		if len(bytes.TrimSpace(data)) > 0 {
			good, b := decodeEach(data, check)
			recs, bad = append(recs, good...), append(bad, b...)
		}
		if chunk.Closed {
			return recs, bad, true, nil
		}
	}
}

// ownerChecker checks the records of an ownership root in stream order
// (see ownerRecord.problem).
func ownerChecker() func(ownerRecord) string {
	maxEpoch := int64(-1)
	return func(r ownerRecord) string {
		if reason := r.problem(maxEpoch); reason != "" {
			return reason
		}
		maxEpoch = max(maxEpoch, r.Epoch)
		return ""
	}
}

// logChecker checks the records of a position log of epoch.
func logChecker(epoch int64) func(ownerRecord) string {
	return func(r ownerRecord) string {
		if r.Epoch != epoch {
			return fmt.Sprintf("epoch %d in a log of epoch %d", r.Epoch, epoch)
		}
		return r.problem(epoch)
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

// claimOf finds the first record at epoch: the claim that won it.
func claimOf(recs []ownerRecord, epoch int64) (ownerRecord, bool) {
	for _, r := range recs {
		if r.Epoch == epoch {
			return r, true
		}
	}
	return ownerRecord{}, false
}

// closeStream closes a stream without a body; a missing stream has
// nothing to close.
func closeStream(ctx context.Context, c *protocol.Client, policy retry.Policy, url string) error {
	if err := c.CloseStream(ctx, policy, url); err != nil && !errors.Is(err, protocol.ErrStreamNotFound) {
		return err
	}
	return nil
}
