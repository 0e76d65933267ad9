package reader

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// stepGET sends one catch-up GET, or a long-poll once caught up.
func (r *Reader) stepGET(ctx context.Context) (Chunk, bool, error) {
	live := ""
	timeout := r.cfg.Client.RequestTimeout
	if r.upToDate {
		live = "long-poll"
		timeout = r.cfg.LiveTimeout
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	target := r.readURL(live)
	req, err := r.cfg.Client.NewRequest(ctx, http.MethodGet, target, nil)
	if err != nil {
		return Chunk{}, false, err
	}
	resp, err := r.cfg.Client.Do(req)
	if err != nil {
		return Chunk{}, false, &networkError{fmt.Errorf("durablestreams: read %s: %w", protocol.RedactURL(r.cfg.URL), err)}
	}
	defer protocol.DrainClose(resp.Body)

	switch resp.StatusCode {
	case http.StatusOK, http.StatusNoContent:
	default:
		return Chunk{}, false, statusError(resp, target)
	}
	h, err := parseReadHeaders(resp.Header)
	if err != nil {
		return Chunk{}, false, fmt.Errorf("durablestreams: read %s: %w", protocol.RedactURL(r.cfg.URL), err)
	}
	var data []byte
	if resp.StatusCode == http.StatusOK {
		if ct := resp.Header.Get("Content-Type"); ct != "" {
			r.contentType = ct
		}
		data, err = readBounded(resp.Body, r.cfg.MaxBodyBytes)
		if err != nil {
			return Chunk{}, false, fmt.Errorf("durablestreams: read %s: %w", protocol.RedactURL(r.cfg.URL), err)
		}
	}
	return r.advance(h, data)
}

// readBounded reads a whole body of at most max bytes. A body cut short
// by the network is a network error: the read is simply repeated.
func readBounded(body io.Reader, max int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(body, max+1))
	if err != nil {
		return nil, &networkError{fmt.Errorf("read body: %w", err)}
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%w: body exceeds %d bytes", ErrBodyTooLarge, max)
	}
	return data, nil
}
