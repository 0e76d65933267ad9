package topics

import (
	"context"
	"errors"
	"sync"

	"github.com/durablestreams/watermill-durablestreams/internal/producer"
)

// snapshot returns every producer that may hold messages: those whose
// stream exists, and those whose stream is being created (an async
// Publish buffers there).
func (r *Registry) snapshot() []*topicProducer {
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

// Flush flushes every producer. One the reaper retired since the snapshot
// (closed, so Flush says ErrProducerClosed) had every message acknowledged
// when it was taken, and no Publish could use it after: nothing of it
// failed.
func (r *Registry) Flush(ctx context.Context) error { return r.flushAll(ctx, r.snapshot()) }

func (r *Registry) flushAll(ctx context.Context, tps []*topicProducer) error {
	return r.each(tps, func(tp *topicProducer) error {
		err := tp.producer.Flush(ctx)
		if errors.Is(err, producer.ErrProducerClosed) && tp.idleRetired.Load() {
			return nil
		}
		return err
	})
}

// Close stops the reaper, then flushes and stops every producer.
func (r *Registry) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	close(r.stopReaper)
	r.reaperDone.Wait()

	pending := r.awaitCreations(ctx)
	// A creation that CloseTimeout cut short is blamed; of the started
	// producers only those whose messages did not all get a result (an
	// idle producer's Close succeeds with ctx over).
	var cut []error
	for _, tp := range pending {
		if tp.initErr != nil && errors.Is(tp.initErr, r.cfg.Closed) {
			cut = append(cut, r.cfg.Wrap(tp.initErr, "topic %q", tp.topic))
		}
	}
	err := r.each(r.snapshot(), func(tp *topicProducer) error { return tp.producer.Close(ctx) })
	r.cancel()
	r.workers.Wait()
	if r.hooks != nil {
		// Every producer has ended: the failures are all queued, the
		// last ones maybe just now, when ctx ended the flush. Their
		// calls get a CloseTimeout of their own: bounded, for a hook
		// that calls Close itself, but never skipped.
		hookCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.CloseTimeout)
		cut = append(cut, r.hooks.close(hookCtx))
		cancel()
	}
	return errors.Join(append(cut, err)...)
}

// awaitCreations settles the streams still being created: one that a
// caller still waits for (a synchronous Publish in acquire, async
// messages buffered) is waited for, no longer than ctx (CloseTimeout)
// allows; one nobody waits for any more (its Publish gave up) is cut
// short at once. It returns the former.
func (r *Registry) awaitCreations(ctx context.Context) (pending []*topicProducer) {
	r.mu.Lock()
	var abandoned []*topicProducer
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
	return pending
}

// each runs fn for every producer concurrently and joins the errors,
// each in its public form (Config.Public) and named by its topic.
func (r *Registry) each(tps []*topicProducer, fn func(*topicProducer) error) error {
	errs := make([]error, len(tps))
	var wg sync.WaitGroup
	for i, tp := range tps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(tp); err != nil {
				errs[i] = r.cfg.Wrap(r.cfg.Public(err), "topic %q", tp.topic)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
