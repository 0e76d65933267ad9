package topics

import (
	"context"
	"time"

	"github.com/ThreeDotsLabs/watermill"
)

// reap releases producers idle for longer than idle.
func (r *Registry) reap(idle time.Duration) {
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

func (r *Registry) takeIdle(now time.Time, idle time.Duration) []*topicProducer {
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

// goRetire retires a producer that left the registry in a goroutine that
// Close joins. Needs r.mu.
func (r *Registry) goRetire(tp *topicProducer) {
	r.workers.Add(1)
	go func() {
		defer r.workers.Done()
		r.retire(tp)
	}()
}

// retire flushes and stops a producer that left the registry. Its
// messages' callers already know their fate (sync) or get it through
// OnAsyncError, so a flush error here is only logged.
func (r *Registry) retire(tp *topicProducer) {
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.CloseTimeout)
	defer cancel()
	if err := tp.producer.Close(ctx); err != nil {
		r.cfg.Logger.Error("Idle producer closed with errors", err, watermill.LogFields{
			"topic": tp.topic, "stream_url": tp.redactedURL,
		})
		return
	}
	r.cfg.Logger.Debug("Idle producer released", watermill.LogFields{
		"topic": tp.topic, "stream_url": tp.redactedURL,
	})
}
