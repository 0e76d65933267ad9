package subscription

import (
	"context"
	"errors"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// RefusedPoll caps a subscriber's wait after a refused connection: a
// server's port refuses while it restarts, and a subscription must read
// the restarted stream (and see that it is new, a 404 or a tail before
// its offset) before a publisher fills it past the subscription's offset,
// which would make the new stream look like the old one. A refused
// connection costs the server nothing.
const RefusedPoll = 250 * time.Millisecond

// lostOrVanished is lostPosition, noting first whether the server could
// not be reached during the subscription (mark is the count of outages
// before the read that failed with err): a stream missing after that is
// one a server restart lost (an in-memory server comes back empty), and
// the Error line says so.
func (sub *Subscription) lostOrVanished(ctx context.Context, err error, mark uint64) *positionLostError {
	if sub.cfg.Client.Reach.Outages() != mark || errors.Is(err, protocol.ErrServerUnreachable) {
		sub.outage = true
	}
	lost := sub.lostPosition(ctx, err)
	if lost != nil {
		sub.outage = false
	}
	return lost
}

// unreachableWait is how long a subscription whose read ended on an
// unreachable server waits before it reads again, and whether err is such
// an end. The client's Reach has logged it (at Error, then at a bounded
// rate), so this adds no line of its own.
func (sub *Subscription) unreachableWait(err error, backoff time.Duration) (time.Duration, bool) {
	if !errors.Is(err, protocol.ErrServerUnreachable) {
		return 0, false
	}
	sub.cfg.Logger.Debug("Server unreachable; reading again", sub.cfg.Fields.Add(watermill.LogFields{"reason": err.Error()}))
	return min(backoff, RefusedPoll), true
}

// TailAtSubscribe is the tail a StartFromTail subscription starts from.
// When the server cannot be reached at Subscribe, it is taken at the
// server's first answer (within RefusedPoll of its return) and Subscribe
// gives up after RetryPolicy.MaxUnreachable with protocol.ErrServerUnreachable.
// What was appended between the server's return and that answer is not
// delivered, so a tail taken late is logged at Error, never silently.
func TailAtSubscribe(ctx context.Context, client *protocol.Client, logger watermill.LoggerAdapter, topic, streamURL string) (string, bool, error) {
	began := time.Now()
	mark, down := client.Reach.Outages(), client.Reach.Down()
	tail, exists, err := client.Tail(ctx, streamURL)
	if err == nil && exists && (down || client.Reach.Outages() != mark) {
		logger.Error("The server could not be reached when Subscribe was called; StartFromTail starts at the tail "+
			"it showed when it answered again: messages appended before that are not delivered", nil, watermill.LogFields{
			"topic": topic, "stream_url": protocol.RedactURL(streamURL), "offset": tail,
			"waited": time.Since(began).Round(time.Millisecond).String(),
		})
	}
	return tail, exists, err
}
