package topics

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/durablestreams/watermill-durablestreams/internal/producer"
	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// topicProducer is one topic's stream and its idempotent producer.
type topicProducer struct {
	// topic is the name of its stream: the topic, or with partitions the
	// partition stream.
	topic       string
	redactedURL string

	// producer exists from the start, holding its requests back until
	// the stream does (its Gate), so that an async Publish buffers at once.
	producer *producer.Producer
	// ready is closed once the stream exists (initErr nil) or its creation
	// failed (initErr set); gate tells the producer the same.
	ready   chan struct{}
	initErr error
	gate    chan error
	// cancel ends the creation: Close does so at once for a creation no
	// caller waits for any more.
	cancel context.CancelFunc

	users    int       // Publish calls using it; guarded by Registry.mu
	lastUsed time.Time // guarded by Registry.mu

	fencedLogged atomic.Bool
	logger       watermill.LoggerAdapter
	// idleRetired: the reaper took the producer with every message
	// acknowledged; a Flush that still finds it has nothing to wait for.
	idleRetired atomic.Bool
}

// started reports whether the stream exists and the producer sends.
func (tp *topicProducer) started() bool {
	select {
	case <-tp.ready:
		return tp.initErr == nil
	default:
		return false
	}
}

// failed reports whether creating the stream failed.
func (tp *topicProducer) failed() bool {
	select {
	case <-tp.ready:
		return tp.initErr != nil
	default:
		return false
	}
}

// noteFenced logs, once per producer, that another producer took over.
func (tp *topicProducer) noteFenced(err error) {
	if errors.Is(err, protocol.ErrStaleEpoch) && tp.fencedLogged.CompareAndSwap(false, true) {
		tp.logger.Error("Producer fenced by a newer producer with the same id", err, watermill.LogFields{
			"topic":      tp.topic,
			"stream_url": tp.redactedURL,
		})
	}
}

// streamMissing: the producer met a 404 or 410; its messages failed and a
// new producer must create the stream again.
func streamMissing(err error) bool {
	return errors.Is(err, protocol.ErrStreamNotFound) || errors.Is(err, protocol.ErrStreamGone)
}

// epochClock hands out producer epochs: milliseconds since the Unix epoch,
// strictly increasing within the process. A producer that comes back for a
// topic after being released, or after a restart, so starts at an epoch the
// server has not seen; starting again at an old (epoch, seq) would make the
// server drop its first batches as duplicates.
var epochClock atomic.Int64

func nextEpoch() int64 {
	for {
		last := epochClock.Load()
		next := max(time.Now().UnixMilli(), last+1)
		if epochClock.CompareAndSwap(last, next) {
			return next
		}
	}
}
