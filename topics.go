package durablestreams

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/durablestreams/watermill-durablestreams/internal/producer"
	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// topicProducer is one topic's stream and its idempotent producer.
type topicProducer struct {
	topic       string
	redactedURL string

	ready    chan struct{} // closed once producer or initErr is set
	producer *producer.Producer
	initErr  error

	users    int       // Publish calls using it; guarded by topicRegistry.mu
	lastUsed time.Time // guarded by topicRegistry.mu

	fencedLogged atomic.Bool
	logger       watermill.LoggerAdapter
}

// started reports whether the producer is ready to use; reading
// tp.producer is safe once it returns true.
func (tp *topicProducer) started() bool {
	select {
	case <-tp.ready:
		return tp.initErr == nil
	default:
		return false
	}
}

// noteFenced logs, once per producer, that another producer took over.
func (tp *topicProducer) noteFenced(err error) {
	if errors.Is(err, ErrStaleEpoch) && tp.fencedLogged.CompareAndSwap(false, true) {
		tp.logger.Error("Producer fenced by a newer producer with the same id", err, watermill.LogFields{
			"topic":      tp.topic,
			"stream_url": tp.redactedURL,
		})
	}
}

// topicRegistry creates each topic's producer lazily, exactly once, and
// releases producers that sat idle, so that a Publisher writing to many
// topics keeps memory and goroutines bounded.
type topicRegistry struct {
	pub *Publisher

	mu     sync.Mutex
	topics map[string]*topicProducer
	closed bool

	stopReaper chan struct{}
	reaperDone sync.WaitGroup
}

func newTopicRegistry(p *Publisher) *topicRegistry {
	r := &topicRegistry{
		pub:        p,
		topics:     make(map[string]*topicProducer),
		stopReaper: make(chan struct{}),
	}
	r.reaperDone.Add(1)
	go r.reap(p.config.IdleProducerTimeout)
	return r
}

// acquire returns the topic's producer, creating stream and producer on
// first use; the caller must release it.
func (r *topicRegistry) acquire(ctx context.Context, topic, streamURL string) (*topicProducer, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, ErrPublisherClosed
	}
	tp, ok := r.topics[topic]
	if !ok {
		tp = &topicProducer{
			topic:       topic,
			redactedURL: protocol.RedactURL(streamURL),
			ready:       make(chan struct{}),
			logger:      r.pub.logger,
		}
		r.topics[topic] = tp
	}
	tp.users++
	r.mu.Unlock()

	if !ok {
		tp.producer, tp.initErr = r.start(ctx, topic, streamURL)
		close(tp.ready)
	} else {
		select {
		case <-tp.ready:
		case <-ctx.Done():
			r.release(tp)
			return nil, fmt.Errorf("durablestreams: waiting for the producer of %q: %w", topic, ctx.Err())
		}
	}
	if tp.initErr != nil {
		r.mu.Lock()
		if r.topics[topic] == tp {
			// Forget it so that the next Publish tries again.
			delete(r.topics, topic)
		}
		tp.users--
		r.mu.Unlock()
		return nil, tp.initErr
	}
	return tp, nil
}

func (r *topicRegistry) release(tp *topicProducer) {
	r.mu.Lock()
	tp.users--
	tp.lastUsed = time.Now()
	r.mu.Unlock()
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

func (r *topicRegistry) start(ctx context.Context, topic, streamURL string) (*producer.Producer, error) {
	p := r.pub
	fields := watermill.LogFields{"topic": topic, "stream_url": protocol.RedactURL(streamURL)}
	if err := p.checkUnpartitioned(ctx, topic, streamURL); err != nil {
		return nil, fmt.Errorf("durablestreams: publish to %q (nothing published): %w", topic, err)
	}
	if err := p.client.CreateStream(ctx, streamURL, p.config.streamOptions()); err != nil {
		return nil, fmt.Errorf("durablestreams: create stream for %q: %w", topic, err)
	}
	prod, err := producer.New(producer.Config{
		URL:              streamURL,
		ContentType:      p.config.Marshaler.ContentType(),
		ProducerID:       p.config.ProducerID,
		Epoch:            nextEpoch(),
		AutoClaim:        !p.config.DisableAutoClaim,
		Linger:           p.config.Linger,
		MaxBatchBytes:    p.config.MaxBatchBytes,
		MaxInFlight:      p.config.MaxInFlight,
		MaxBufferedBytes: p.config.MaxBufferedBytes,
		Retry:            p.client.Retry,
		Client:           p.client,
		Logger:           p.logger,
	})
	if err != nil {
		return nil, fmt.Errorf("durablestreams: producer for %q: %w", topic, err)
	}
	p.logger.Debug("Producer started", fields)
	return prod, nil
}

// reap releases producers idle for longer than idle.
func (r *topicRegistry) reap(idle time.Duration) {
	defer r.reaperDone.Done()
	ticker := time.NewTicker(max(idle/2, 10*time.Millisecond))
	defer ticker.Stop()
	for {
		select {
		case <-r.stopReaper:
			return
		case now := <-ticker.C:
			for _, tp := range r.takeIdle(now, idle) {
				r.retire(tp)
			}
		}
	}
}

func (r *topicRegistry) takeIdle(now time.Time, idle time.Duration) []*topicProducer {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*topicProducer
	for topic, tp := range r.topics {
		if tp.users == 0 && tp.started() && now.Sub(tp.lastUsed) >= idle {
			delete(r.topics, topic)
			out = append(out, tp)
		}
	}
	return out
}

// retire flushes and stops a producer that left the registry. Its
// messages' callers already know their fate (sync) or get it through
// OnAsyncError, so a flush error here is only logged.
func (r *topicRegistry) retire(tp *topicProducer) {
	ctx, cancel := detachedContext(r.pub.config.CloseTimeout)
	defer cancel()
	if err := tp.producer.Close(ctx); err != nil {
		r.pub.logger.Error("Idle producer closed with errors", err, watermill.LogFields{
			"topic": tp.topic, "stream_url": tp.redactedURL,
		})
		return
	}
	r.pub.logger.Debug("Idle producer released", watermill.LogFields{
		"topic": tp.topic, "stream_url": tp.redactedURL,
	})
}

func (r *topicRegistry) snapshot() []*topicProducer {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*topicProducer, 0, len(r.topics))
	for _, tp := range r.topics {
		if tp.started() {
			out = append(out, tp)
		}
	}
	return out
}

func (r *topicRegistry) flush(ctx context.Context) error {
	return r.each(r.snapshot(), func(tp *topicProducer) error { return tp.producer.Flush(ctx) })
}

// close stops the reaper, then flushes and stops every producer.
func (r *topicRegistry) close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	close(r.stopReaper)
	r.reaperDone.Wait()

	// Producers still being created finish first, so none is missed.
	r.mu.Lock()
	pending := make([]*topicProducer, 0, len(r.topics))
	for _, tp := range r.topics {
		pending = append(pending, tp)
	}
	r.mu.Unlock()
	for _, tp := range pending {
		<-tp.ready
	}
	return r.each(r.snapshot(), func(tp *topicProducer) error { return tp.producer.Close(ctx) })
}

// each runs fn for every producer concurrently and joins the errors.
func (r *topicRegistry) each(tps []*topicProducer, fn func(*topicProducer) error) error {
	errs := make([]error, len(tps))
	var wg sync.WaitGroup
	for i, tp := range tps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(tp); err != nil {
				errs[i] = fmt.Errorf("topic %q: %w", tp.topic, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
