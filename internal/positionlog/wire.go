package positionlog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/durablestreams/watermill-durablestreams/internal/jsonscan"
	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
	"github.com/durablestreams/watermill-durablestreams/internal/reader"
)

// readLast decodes the last record of a JSON stream into v; a missing
// stream (exists false) has none. It returns how many records there are.
// A body cut short is read again from the start.
func (ls *Logs[P]) readLast(ctx context.Context, streamURL string, v any) (exists, ok bool, n int, err error) {
	var last []byte
	err = protocol.Retry(ctx, ls.cfg.RetryPolicy, ls.cfg.Client.RefusedPoll, func(int) protocol.Try {
		var err error
		exists, last, n, err = ls.readRecords(ctx, streamURL)
		var cut *reader.BodyError
		return protocol.Try{Err: err, Retryable: errors.As(err, &cut)}
	})
	if err != nil {
		return false, false, 0, fmt.Errorf("read %s: %w", protocol.RedactURL(streamURL), err)
	}
	if last == nil {
		return exists, false, 0, nil
	}
	if err := json.Unmarshal(last, v); err != nil {
		return true, false, 0, fmt.Errorf("position record in %s: %w", protocol.RedactURL(streamURL), err)
	}
	return true, true, n, nil
}

// readRecords reads a JSON stream to its tail, keeping its last record.
func (ls *Logs[P]) readRecords(ctx context.Context, streamURL string) (exists bool, last []byte, n int, err error) {
	r, err := reader.New(reader.Config{URL: streamURL, Client: ls.cfg.Client, RetryPolicy: ls.cfg.RetryPolicy, StopAtTail: true})
	if err != nil {
		return false, nil, 0, err
	}
	defer r.Close()
	for {
		chunk, err := r.Next(ctx)
		if errors.Is(err, io.EOF) {
			return true, last, n, nil
		}
		if errors.Is(err, protocol.ErrStreamNotFound) {
			return false, nil, 0, nil
		}
		if err != nil {
			return false, nil, 0, err
		}
		elems := jsonscan.NewArrayReader(chunk.Body, maxRecordBytes)
		for {
			e, err := elems.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				var cut *reader.BodyError
				if errors.As(err, &cut) {
					return false, nil, 0, cut
				}
				return false, nil, 0, fmt.Errorf("%w: JSON-mode body: %w", reader.ErrProtocol, err)
			}
			last = append(last[:0], e...)
			n++
		}
		if chunk.Closed {
			return true, last, n, nil
		}
	}
}

// maxRecordBytes bounds one position record (a hostile server cannot make
// a load buffer more).
const maxRecordBytes = 64 << 10

// errNoLog: the stream to append to does not exist, and appendJSON was
// not to create it.
var errNoLog = errors.New("position log does not exist")

// appendJSON appends one record, creating the stream if it is missing and
// create allows. Retries may append a record twice; a repeated position
// is harmless.
func (ls *Logs[P]) appendJSON(ctx context.Context, streamURL string, v any, create bool) error {
	body, err := json.Marshal([]any{v})
	if err != nil {
		return err
	}
	created := false
	return protocol.Retry(ctx, ls.cfg.RetryPolicy, ls.cfg.Client.RefusedPoll, func(int) protocol.Try {
		try := ls.post(ctx, streamURL, body)
		if try.Status != http.StatusNotFound {
			return try
		}
		if !create {
			return protocol.Try{Err: errNoLog}
		}
		if created {
			return try
		}
		created = true
		if err := ls.cfg.Client.CreateStream(ctx, streamURL, protocol.StreamOptions{ContentType: protocol.ContentTypeJSON}); err != nil {
			// CreateStream retried already: an error that outlasted its
			// policy ended on a retryable failure, an answer (429, 5xx)
			// as well as a network error; other errors are retryable as
			// network failures are.
			return protocol.Try{Err: err, Retryable: errors.Is(err, protocol.ErrRetriesExhausted) || protocol.Retryable(err)}
		}
		return ls.post(ctx, streamURL, body)
	})
}

// post appends body once; the Try says how it ended.
func (ls *Logs[P]) post(ctx context.Context, streamURL string, body []byte) protocol.Try {
	c := ls.cfg.Client
	ctx, cancel := c.WithTimeout(ctx)
	defer cancel()
	req, err := c.NewRequest(ctx, http.MethodPost, streamURL, bytes.NewReader(body))
	if err != nil {
		return protocol.Try{Err: err}
	}
	req.Header.Set("Content-Type", protocol.ContentTypeJSON)
	resp, written, err := c.Send(req)
	if err != nil {
		return protocol.TransportTry(fmt.Errorf("store position in %s: %w", protocol.RedactURL(streamURL), err), written)
	}
	defer protocol.DrainClose(resp.Body)
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return protocol.Try{}
	}
	return c.StatusTry(http.MethodPost, protocol.RedactURL(streamURL), resp.StatusCode, "",
		protocol.RetryAfter(resp.Header, time.Minute))
}
