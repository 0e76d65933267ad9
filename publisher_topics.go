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

	users    int       // Publish calls using it; guarded by topicRegistry.mu
	lastUsed time.Time // guarded by topicRegistry.mu

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
	// ctx lives as long as the Publisher: stream creation runs under it,
	// not under the context of whichever Publish came first.
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	topics map[string]*topicProducer
	closed bool

	stopReaper chan struct{}
	reaperDone sync.WaitGroup
	// workers are the goroutines that create streams and retire
	// producers; close joins them.
	workers sync.WaitGroup
}

func newTopicRegistry(p *Publisher) *topicRegistry {
	ctx, cancel := context.WithCancel(context.Background())
	r := &topicRegistry{
		pub:        p,
		ctx:        ctx,
		cancel:     cancel,
		topics:     make(map[string]*topicProducer),
		stopReaper: make(chan struct{}),
	}
	r.reaperDone.Add(1)
	go r.reap(p.config.IdleProducerTimeout)
	return r
}

// acquire returns the topic's producer, starting stream creation on
// first use; the caller must release it. Creation runs under the
// Publisher's lifetime, bounded by RequestTimeout and RetryPolicy. With
// wait, acquire returns once the stream exists, and ctx bounds only this
// caller's wait; without (an async Publish), it returns at once: the
// producer buffers until the stream exists, and fails what it holds if it
// cannot be created. A producer whose stream turned out missing (404,
// 410) is replaced, so that the stream is created again.
func (r *topicRegistry) acquire(ctx context.Context, topic, streamURL string, wait bool) (*topicProducer, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, ErrPublisherClosed
	}
	tp, ok := r.topics[topic]
	if ok && tp.started() && streamMissing(tp.producer.Broken()) {
		delete(r.topics, topic)
		r.goRetire(tp)
		ok = false
	}
	if ok && tp.failed() {
		// Its creation failed a moment ago; create forgets it too. Try
		// again rather than hand out its error.
		delete(r.topics, topic)
		ok = false
	}
	if !ok {
		var err error
		if tp, err = r.newTopic(topic, streamURL); err != nil {
			r.mu.Unlock()
			return nil, err
		}
	}
	tp.users++
	r.mu.Unlock()

	if !wait {
		return tp, nil
	}
	select {
	case <-tp.ready:
	default:
		select {
		case <-tp.ready:
		case <-ctx.Done():
			r.release(tp)
			return nil, r.waitEnded(ctx, tp)
		}
	}
	if tp.initErr != nil {
		r.release(tp)
		return nil, tp.initErr
	}
	return tp, nil
}

// newTopic makes a topic's producer, held back by its gate, and starts
// creating its stream. Needs r.mu.
func (r *topicRegistry) newTopic(topic, streamURL string) (*topicProducer, error) {
	ctx, cancel := context.WithCancel(r.ctx)
	tp := &topicProducer{
		topic:       topic,
		redactedURL: protocol.RedactURL(streamURL),
		ready:       make(chan struct{}),
		gate:        make(chan error, 1),
		cancel:      cancel,
		logger:      r.pub.logger,
	}
	prod, err := r.newProducer(topic, streamURL, tp.gate)
	if err != nil {
		cancel()
		return nil, wrap(err, "producer for %q", topic)
	}
	tp.producer = prod
	r.topics[topic] = tp
	r.workers.Add(1)
	go func() {
		defer r.workers.Done()
		defer cancel()
		r.create(ctx, tp, streamURL)
	}()
	return tp, nil
}

// create creates tp's stream, then opens its producer's gate; when it
// fails, the producer fails what it holds (async messages reach
// OnAsyncError), and the topic is forgotten so that the next Publish
// tries again.
func (r *topicRegistry) create(ctx context.Context, tp *topicProducer, streamURL string) {
	p := r.pub
	err := p.streams.Ensure(ctx, tp.topic, streamURL, p.config.streamOptions())
	if err != nil {
		if errors.Is(err, ErrStreamClosed) {
			err = p.sealedForPartitions(ctx, tp.topic, err)
		}
		err = wrap(rootHint(p.root, err), "create stream for %q", tp.topic)
		if ctx.Err() != nil {
			err = fmt.Errorf("%w: creating the stream of %q was cut short: %v", ErrPublisherClosed, tp.topic, err)
		}
	}
	tp.initErr = err
	// ready before the gate: the gate lets the producer fail what it
	// holds, and an OnAsyncError hook that publishes again must then find
	// the creation failed (and start another), not hand its message to
	// the failing producer.
	close(tp.ready)
	tp.gate <- err
	if err == nil {
		p.logger.Debug("Producer started", watermill.LogFields{"topic": tp.topic, "stream_url": tp.redactedURL})
		return
	}
	r.mu.Lock()
	if r.topics[tp.topic] == tp {
		delete(r.topics, tp.topic)
	}
	r.mu.Unlock()
	// Every message it held failed with err; Close only joins it.
	closeCtx, cancel := detachedContext(p.config.CloseTimeout)
	defer cancel()
	_ = tp.producer.Close(closeCtx)
}

// waitEnded is the error of a caller whose context ended while the
// stream was being created: not written (nothing was handed over), and
// saying why creation takes so long when the server cannot be reached.
func (r *topicRegistry) waitEnded(ctx context.Context, tp *topicProducer) error {
	cause := context.Cause(ctx)
	if last := r.pub.client.Reach.LastFailure(tp.redactedURL); last != nil {
		return fmt.Errorf("waiting for the stream of %q (%s) to be created: %w (%w: %w)",
			tp.topic, tp.redactedURL, cause, ErrServerUnreachable, last)
	}
	return fmt.Errorf("waiting for the stream of %q (%s) to be created: %w", tp.topic, tp.redactedURL, cause)
}

// streamMissing: the producer met a 404 or 410; its messages failed and a
// new producer must create the stream again.
func streamMissing(err error) bool {
	return errors.Is(err, ErrStreamNotFound) || errors.Is(err, ErrStreamGone)
}

// goRetire retires a producer that left the registry in a goroutine that
// close joins. Needs r.mu.
func (r *topicRegistry) goRetire(tp *topicProducer) {
	r.workers.Add(1)
	go func() {
		defer r.workers.Done()
		r.retire(tp)
	}()
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

// newProducer makes the producer of a topic's stream, which sends nothing
// before gate yields; it sends no request.
func (r *topicRegistry) newProducer(topic, streamURL string, gate <-chan error) (*producer.Producer, error) {
	p := r.pub
	return producer.New(producer.Config{
		URL:              streamURL,
		Gate:             gate,
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
		Logger:           p.logger.With(watermill.LogFields{"topic": topic}),
	})
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
		// Buffered and in-flight messages keep a producer: releasing it
		// would let a new one for the topic write beside it (fencing each
		// other, out of order) and a Flush miss them.
		if tp.users == 0 && tp.started() && now.Sub(tp.lastUsed) >= idle && tp.producer.Idle() {
			tp.idleRetired.Store(true)
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

// snapshot returns every producer that may hold messages: those whose
// stream exists, and those whose stream is being created (an async
// Publish buffers there).
func (r *topicRegistry) snapshot() []*topicProducer {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*topicProducer, 0, len(r.topics))
	for _, tp := range r.topics {
		if tp.started() || !tp.failed() {
			out = append(out, tp)
		}
	}
	return out
}

// flush flushes every producer. One the reaper retired since the snapshot
// (closed, so Flush says ErrProducerClosed) had every message acknowledged
// when it was taken, and no Publish could use it after: nothing of it
// failed.
func (r *topicRegistry) flush(ctx context.Context) error { return r.flushAll(ctx, r.snapshot()) }

func (r *topicRegistry) flushAll(ctx context.Context, tps []*topicProducer) error {
	return r.each(tps, func(tp *topicProducer) error {
		err := tp.producer.Flush(ctx)
		if errors.Is(err, producer.ErrProducerClosed) && tp.idleRetired.Load() {
			return nil
		}
		return err
	})
}

// close stops the reaper, then flushes and stops every producer.
func (r *topicRegistry) close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	close(r.stopReaper)
	r.reaperDone.Wait()

	// Streams still being created: one that a caller still waits for
	// (a synchronous Publish in acquire, async messages buffered) is
	// waited for, no longer than ctx (CloseTimeout) allows; one nobody
	// waits for any more (its Publish gave up) is cut short at once.
	r.mu.Lock()
	var pending, abandoned []*topicProducer
	for _, tp := range r.topics {
		select {
		case <-tp.ready:
			continue
		default:
		}
		if tp.users == 0 && tp.producer.Idle() {
			abandoned = append(abandoned, tp)
		} else {
			pending = append(pending, tp)
		}
	}
	r.mu.Unlock()
	for _, tp := range abandoned {
		tp.cancel()
	}
	for _, tp := range pending {
		select {
		case <-tp.ready:
		case <-ctx.Done():
			r.cancel()
			<-tp.ready
		}
	}
	for _, tp := range abandoned {
		<-tp.ready
	}
	// A creation that CloseTimeout cut short is blamed; of the started
	// producers only those whose messages did not all get a result (an
	// idle producer's Close succeeds with ctx over).
	var cut []error
	for _, tp := range pending {
		if tp.initErr != nil && errors.Is(tp.initErr, ErrPublisherClosed) {
			cut = append(cut, wrap(tp.initErr, "topic %q", tp.topic))
		}
	}
	err := r.each(r.snapshot(), func(tp *topicProducer) error { return tp.producer.Close(ctx) })
	r.cancel()
	r.workers.Wait()
	return errors.Join(append(cut, err)...)
}

// each runs fn for every producer concurrently and joins the errors,
// each in its public form (see Publisher.mapErr) and named by its topic.
func (r *topicRegistry) each(tps []*topicProducer, fn func(*topicProducer) error) error {
	errs := make([]error, len(tps))
	var wg sync.WaitGroup
	for i, tp := range tps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(tp); err != nil {
				errs[i] = wrap(r.pub.mapErr(err), "topic %q", tp.topic)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
