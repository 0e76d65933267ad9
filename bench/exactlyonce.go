package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	durablestreams "github.com/durablestreams/watermill-durablestreams"
)

// The exactly-once rows (issue 21): a Router handler consumes a backlog
// from a topic of eoBenchPartitions partitions in a group of one member
// and returns one output per input, published synchronously to a topic of
// as many partitions (each output keyed like its input: co-partitioned).
// The same run measures it at-least-once (the plain Router) and with the
// ExactlyOnce middleware, on fresh topics each, from the first input's
// Publish to the n-th's. The latency lines are each input's Publish call.

const eoBenchPartitions = 4

// eoBenchKey is the metadata an output carries its input's key in.
const eoBenchKey = "in_key"

// eoBenchJob is row group 13.
func eoBenchJob(b *bench) job {
	n := b.scaled(10_000, 100)
	return job{group: "13", runs: 3, lines: []line{
		{id: "13-alo", what: fmt.Sprintf("consume→publish, Router handler returns 1 output per input, %d inputs, %d partitions, 1 member, sync Publisher (at-least-once)", n, eoBenchPartitions), unit: "msgs/s"},
		{id: "13-eo", what: "the same with the ExactlyOnce middleware", unit: "msgs/s", ratios: []ratio{{to: "13-alo", atLeast: 0.7}}},
		{id: "13-alo-p50", what: "13-alo: one input's Publish call, p50", unit: "µs"},
		{id: "13-alo-p99", what: "13-alo: the same, p99", unit: "µs"},
		{id: "13-eo-p50", what: "13-eo: one input's Publish call, p50", unit: "µs", ratios: []ratio{{to: "13-alo-p50"}}},
		{id: "13-eo-p99", what: "13-eo: the same, p99", unit: "µs", ratios: []ratio{{to: "13-alo-p99"}}},
	}, run: func(ctx context.Context, r *runCtx) (map[string]float64, error) {
		values := make(map[string]float64)
		for _, mode := range []string{"alo", "eo"} {
			var rate float64
			var lat []time.Duration
			_, err := r.timed(func() (err error) {
				rate, lat, err = eoBenchRun(ctx, r, n, mode == "eo")
				return err
			}, "13-"+mode)
			if err != nil {
				return nil, fmt.Errorf("13-%s: %w", mode, err)
			}
			values["13-"+mode] = rate
			values["13-"+mode+"-p50"] = micros(percentile(lat, 50))
			values["13-"+mode+"-p99"] = micros(percentile(lat, 99))
		}
		return values, nil
	}}
}

// eoBenchRun drains n inputs through the consume→publish handler.
func eoBenchRun(ctx context.Context, r *runCtx, n int, exactlyOnce bool) (float64, []time.Duration, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	c, err := r.b.corpusOf(jsonMode, n)
	if err != nil {
		return 0, nil, err
	}
	baseURL := r.b.baseURL()
	in, out := "bench-eo-in-"+uuid.NewString()[:8], "bench-eo-out-"+uuid.NewString()[:8]
	defer func() {
		for _, topic := range []string{in, out} {
			for _, s := range partitionStreams(topic, eoBenchPartitions) {
				r.b.deleteStream(baseURL + "/" + s)
			}
		}
	}()
	if err := writeKeyedBacklog(ctx, baseURL, in, eoBenchPartitions, c.messages()); err != nil {
		return 0, nil, err
	}
	pub, err := durablestreams.NewPublisher(durablestreams.PublisherConfig{
		BaseURL: baseURL, Partitions: eoBenchPartitions,
		PartitionFunc: func(_ string, msg *message.Message) string { return msg.Metadata.Get(eoBenchKey) },
	}, nil)
	if err != nil {
		return 0, nil, err
	}
	defer pub.Close()
	sub, err := newGroupMember(baseURL, "bench-eo-"+uuid.NewString()[:8], "m0", nil, 0, 0)
	if err != nil {
		return 0, nil, err
	}
	defer sub.Close()
	timed := &eoTimedPublisher{pub: pub, n: int64(n), all: make(chan struct{})}
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, watermill.NopLogger{})
	if err != nil {
		return 0, nil, err
	}
	if exactlyOnce {
		router.AddMiddleware(durablestreams.ExactlyOnce)
	}
	router.AddHandler("eo", in, sub, out, timed, func(msg *message.Message) ([]*message.Message, error) {
		o := message.NewMessage(watermill.NewUUID(), msg.Payload)
		o.Metadata.Set(eoBenchKey, msg.UUID) // the input's key: its UUID
		return []*message.Message{o}, nil
	})
	return timed.run(ctx, router)
}

// eoTimedPublisher times each Publish and the drain.
type eoTimedPublisher struct {
	pub         message.Publisher
	n           int64
	done        atomic.Int64
	mu          sync.Mutex
	lat         []time.Duration
	first, last time.Time
	all         chan struct{}
}

func (p *eoTimedPublisher) Publish(topic string, msgs ...*message.Message) error {
	start := time.Now()
	err := p.pub.Publish(topic, msgs...)
	end := time.Now()
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.lat = append(p.lat, end.Sub(start))
	if p.first.IsZero() {
		p.first = start
	}
	p.mu.Unlock()
	if p.done.Add(1) == p.n {
		p.last = end
		close(p.all)
	}
	return nil
}

func (p *eoTimedPublisher) Close() error { return nil }

// run runs router until every input's output is published.
func (p *eoTimedPublisher) run(ctx context.Context, router *message.Router) (float64, []time.Duration, error) {
	runErr := make(chan error, 1)
	go func() { runErr <- router.Run(ctx) }()
	var err error
	select {
	case <-p.all:
	case err = <-runErr:
		err = fmt.Errorf("router stopped after %d of %d inputs: %v", p.done.Load(), p.n, err)
	case <-ctx.Done():
		err = fmt.Errorf("%d of %d inputs published: %w", p.done.Load(), p.n, ctx.Err())
	}
	closeErr := router.Close()
	if err == nil {
		err = <-runErr
	}
	if err == nil {
		err = closeErr
	}
	if err != nil {
		return 0, nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return rate(int(p.n)-1, p.last.Sub(p.first)), p.lat, nil
}
