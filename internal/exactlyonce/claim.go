package exactlyonce

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/durablestreams/watermill-durablestreams/internal/naming"
	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

type writerClaim struct {
	Writer string `json:"writer"`
}

// prepare creates the output stream (with the Publisher's content type,
// so that a later 409 cannot be a type mismatch) and claims it for this
// writer.
//
// Stream-Seq is kept per stream on both servers, whoever writes, so two
// exactly-once writers on one stream would make each other's outputs
// look "already written". The claim is the first message of the claim
// stream, appended with Stream-Seq "0": the server lets one such append
// through and answers 409 to every later one, so the first claimer wins
// on both servers, and a writer that lost (or whose try landed before a
// retry) reads the claim to see whose it is.
func (w *Writer) prepare(ctx context.Context) error {
	if _, _, err := w.env.Client.EnsureStream(ctx, w.url, protocol.StreamOptions{ContentType: w.env.ContentType}); err != nil {
		return err
	}
	claimURL := w.url + naming.ClaimSuffix
	if _, _, err := w.env.Client.EnsureStream(ctx, claimURL, protocol.StreamOptions{ContentType: "application/json"}); err != nil {
		return err
	}
	body, err := json.Marshal(writerClaim{Writer: w.writerID})
	if err != nil {
		return err
	}
	err = protocol.RetryIdempotent(ctx, w.env.Client.Retry, w.env.Client.RefusedPoll, func() protocol.Try {
		return w.claimTry(ctx, claimURL, body)
	})
	if err != nil {
		return err
	}
	owner, err := w.claimOwner(ctx, claimURL)
	if err != nil {
		return err
	}
	if owner != w.writerID {
		return fmt.Errorf("%w: %q is written by %q; this writer is %q (one consumer group and one input topic per output topic)",
			ErrSecondWriter, w.topic, owner, w.writerID)
	}
	w.env.Logger.Info("Exactly-once output stream claimed", watermill.LogFields{
		"topic": w.topic, "stream_url": protocol.RedactURL(w.url), "writer": w.writerID, "producer_id": w.producerID,
	})
	return nil
}

// claimTry appends the claim; a 409 (someone's claim is there) is an
// answer too.
func (w *Writer) claimTry(ctx context.Context, url string, body []byte) protocol.Try {
	reqCtx, cancel := w.env.Client.WithTimeout(ctx)
	defer cancel()
	req, err := w.env.Client.NewRequest(reqCtx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return protocol.Try{Err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stream-Seq", "0")
	resp, written, err := w.env.Client.Send(req)
	if err != nil {
		return protocol.TransportTry(err, written)
	}
	text, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	protocol.DrainClose(resp.Body)
	if resp.StatusCode < 300 || resp.StatusCode == http.StatusConflict {
		return protocol.Try{}
	}
	return w.env.Client.StatusTry(http.MethodPost, protocol.RedactURL(url),
		resp.StatusCode, string(bytes.TrimSpace(text)), 0)
}

// claimOwner reads the claim stream's first message.
func (w *Writer) claimOwner(ctx context.Context, url string) (string, error) {
	var owner string
	err := protocol.RetryIdempotent(ctx, w.env.Client.Retry, w.env.Client.RefusedPoll, func() protocol.Try {
		reqCtx, cancel := w.env.Client.WithTimeout(ctx)
		defer cancel()
		req, err := w.env.Client.NewRequest(reqCtx, http.MethodGet, url+"?offset=-1", nil)
		if err != nil {
			return protocol.Try{Err: err}
		}
		resp, err := w.env.Client.Do(req)
		if err != nil {
			return protocol.TransportTry(err, false)
		}
		defer protocol.DrainClose(resp.Body)
		text, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if resp.StatusCode != http.StatusOK {
			return w.env.Client.StatusTry(http.MethodGet, protocol.RedactURL(url), resp.StatusCode, "", 0)
		}
		var claims []writerClaim
		if err == nil {
			err = json.Unmarshal(text, &claims)
		}
		if err != nil || len(claims) == 0 {
			return protocol.Try{Err: fmt.Errorf("%w: the writer claim of %q does not parse: %v", ErrNotExactlyOnce, w.topic, err)}
		}
		owner = claims[0].Writer
		return protocol.Try{}
	})
	return owner, err
}
