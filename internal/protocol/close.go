package protocol

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/durablestreams/watermill-durablestreams/retry"
)

// CloseStream closes the stream at url without appending to it. A stream
// closed already, by anyone, counts as closed (409 Stream-Closed); a
// missing one is ErrStreamNotFound. Closing is idempotent, so transient
// failures are retried under policy.
func (c *Client) CloseStream(ctx context.Context, policy retry.Policy, url string) error {
	return RetryIdempotent(ctx, policy, c.RefusedPoll, func() Try {
		ctx, cancel := c.WithTimeout(ctx)
		defer cancel()
		req, err := c.NewRequest(ctx, http.MethodPost, url, nil)
		if err != nil {
			return Try{Err: err}
		}
		req.Header.Set(HeaderClosed, "true")
		resp, written, err := c.Send(req)
		if err != nil {
			return TransportTry(fmt.Errorf("close %s: %w", RedactURL(url), err), written)
		}
		DrainClose(resp.Body)
		switch resp.StatusCode {
		case http.StatusOK, http.StatusNoContent, http.StatusConflict:
			return Try{}
		}
		return c.StatusTry(http.MethodPost, RedactURL(url), resp.StatusCode, "",
			RetryAfter(resp.Header, time.Minute))
	})
}

// DeleteBestEffort drops a stream nothing names any more (a rotated log,
// a finished generation), once: failing only costs the server space.
func (c *Client) DeleteBestEffort(ctx context.Context, url string) {
	ctx, cancel := c.WithTimeout(ctx)
	defer cancel()
	req, err := c.NewRequest(ctx, http.MethodDelete, url, nil)
	if err != nil {
		return
	}
	if resp, err := c.Do(req); err == nil {
		DrainClose(resp.Body)
	}
}
