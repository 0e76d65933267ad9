package topics

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/durablestreams/watermill-durablestreams/internal/producer"
	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// Registry creates each topic's producer lazily, exactly once, and
// releases producers that sat idle, so that a Publisher writing to many
// topics keeps memory and goroutines bounded.
type Registry struct {
	cfg Config
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
	// producers; Close joins them.
	workers sync.WaitGroup

	// partitioned: topics whose recorded partition count matched.
	partitioned sync.Map

	// hooks makes the OnAsyncError calls; nil without a hook.
	hooks *hookQueue
}

// New returns a Registry and starts its reaper; Close stops it.
func New(cfg Config) *Registry {
	ctx, cancel := context.WithCancel(context.Background())
	r := &Registry{
		cfg:        cfg,
		ctx:        ctx,
		cancel:     cancel,
		topics:     make(map[string]*topicProducer),
		stopReaper: make(chan struct{}),
	}
	if cfg.OnAsyncError != nil {
		r.hooks = newHookQueue(cfg.OnAsyncError)
	}
	r.reaperDone.Add(1)
	go r.reap(cfg.IdleTimeout)
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
func (r *Registry) acquire(ctx context.Context, topic, streamURL string, wait bool) (*topicProducer, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, r.cfg.Closed
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

// release gives back a producer acquire returned.
func (r *Registry) release(tp *topicProducer) {
	r.mu.Lock()
	tp.users--
	tp.lastUsed = time.Now()
	r.mu.Unlock()
}

// newTopic makes a topic's producer, held back by its gate, and starts
// creating its stream. Needs r.mu.
func (r *Registry) newTopic(topic, streamURL string) (*topicProducer, error) {
	ctx, cancel := context.WithCancel(r.ctx)
	tp := &topicProducer{
		topic:       topic,
		redactedURL: protocol.RedactURL(streamURL),
		ready:       make(chan struct{}),
		gate:        make(chan error, 1),
		cancel:      cancel,
		logger:      r.cfg.Logger,
	}
	prod, err := r.newProducer(topic, streamURL, tp.gate)
	if err != nil {
		cancel()
		return nil, r.cfg.Wrap(err, "producer for %q", topic)
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

// newProducer makes the producer of a topic's stream, which sends nothing
// before gate yields; it sends no request.
func (r *Registry) newProducer(topic, streamURL string, gate <-chan error) (*producer.Producer, error) {
	cfg := r.cfg.Producer
	cfg.URL = streamURL
	cfg.Gate = gate
	cfg.Epoch = nextEpoch()
	cfg.Logger = r.cfg.Logger.With(watermill.LogFields{"topic": topic})
	return producer.New(cfg)
}

// create creates tp's stream, then opens its producer's gate; when it
// fails, the producer fails what it holds (async messages reach
// OnAsyncError), and the topic is forgotten so that the next Publish
// tries again.
func (r *Registry) create(ctx context.Context, tp *topicProducer, streamURL string) {
	err := r.cfg.Create(ctx, tp.topic, streamURL)
	tp.initErr = err
	// ready before the gate: the gate lets the producer fail what it
	// holds, and an OnAsyncError hook that publishes again must then find
	// the creation failed (and start another), not hand its message to
	// the failing producer.
	close(tp.ready)
	tp.gate <- err
	if err == nil {
		r.cfg.Logger.Debug("Producer started", watermill.LogFields{"topic": tp.topic, "stream_url": tp.redactedURL})
		return
	}
	r.mu.Lock()
	if r.topics[tp.topic] == tp {
		delete(r.topics, tp.topic)
	}
	r.mu.Unlock()
	// Every message it held failed with err; Close only joins it.
	closeCtx, cancel := context.WithTimeout(context.Background(), r.cfg.CloseTimeout)
	defer cancel()
	_ = tp.producer.Close(closeCtx)
}

// waitEnded is the error of a caller whose context ended while the
// stream was being created: not written (nothing was handed over), and
// saying why creation takes so long when the server cannot be reached.
func (r *Registry) waitEnded(ctx context.Context, tp *topicProducer) error {
	cause := context.Cause(ctx)
	if last := r.cfg.Reach.LastFailure(tp.redactedURL); last != nil {
		return fmt.Errorf("waiting for the stream of %q (%s) to be created: %w (%w: %w)",
			tp.topic, tp.redactedURL, cause, protocol.ErrServerUnreachable, last)
	}
	return fmt.Errorf("waiting for the stream of %q (%s) to be created: %w", tp.topic, tp.redactedURL, cause)
}
