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
)

// The group-share rows (issue 14) drain one backlog through a group whose
// members share a partitioned topic, all in this process, each member a
// handler of one Router that only counts (the Router acks). A drain is
// timed from the first message handled to the n-th, so that the members'
// join is left out: the rows measure throughput, not start-up. The CPU
// columns are sampled at the same two points. The issue 20 pair
// (joinDrainPair) counts the join instead.

// groupShareRun drains n messages of a fresh topic of partitions streams
// with members members of a fresh group; it returns the rate and records
// the CPU for lineID.
func groupShareRun(ctx context.Context, r *runCtx, n, partitions, members int, lineID string) (float64, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	c, err := r.b.corpusOf(jsonMode, n)
	if err != nil {
		return 0, err
	}
	baseURL := r.b.baseURL()
	topic := "bench-share-" + uuid.NewString()[:8]
	defer func() {
		for _, s := range partitionStreams(topic, partitions) {
			r.b.deleteStream(baseURL + "/" + s)
		}
	}()
	if err := writeKeyedBacklog(ctx, baseURL, topic, partitions, c.messages()); err != nil {
		return 0, err
	}

	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, watermill.NopLogger{})
	if err != nil {
		return 0, err
	}
	group := "bench-share-" + uuid.NewString()[:8]
	var (
		handled     atomic.Int64
		firstOnce   sync.Once
		first, last time.Time
		cpu0        cpuUsageAt
		cpu1        cpuUsageAt
		all         = make(chan struct{})
		pid         = r.b.srv.PID()
		subs        []groupMember
	)
	defer func() {
		for _, s := range subs {
			_ = s.Close()
		}
	}()
	for i := range members {
		sub, err := newGroupMember(baseURL, group, fmt.Sprintf("m%d", i), nil, 0, 0)
		if err != nil {
			return 0, err
		}
		subs = append(subs, sub)
		router.AddConsumerHandler(fmt.Sprintf("member-%d", i), topic, sub, func(*message.Message) error {
			firstOnce.Do(func() { first, cpu0 = time.Now(), sampleCPU(pid) })
			if handled.Add(1) == int64(n) {
				last, cpu1 = time.Now(), sampleCPU(pid)
				close(all)
			}
			return nil
		})
	}
	runErr := make(chan error, 1)
	go func() { runErr <- router.Run(ctx) }()
	select {
	case <-all:
	case err = <-runErr:
		err = fmt.Errorf("router stopped after %d of %d messages: %v", handled.Load(), n, err)
	case <-ctx.Done():
		err = fmt.Errorf("group handled %d of %d messages: %w", handled.Load(), n, ctx.Err())
	}
	closeErr := router.Close()
	if err == nil {
		err = <-runErr
	}
	if err == nil {
		err = closeErr
	}
	if err != nil {
		return 0, err
	}
	wall := last.Sub(first)
	u := cpuUsage{
		server: (cpu1.server - cpu0.server).Seconds() / wall.Seconds(),
		client: (cpu1.client - cpu0.client).Seconds() / wall.Seconds(),
	}
	r.usage[lineID], r.last = u, u
	// The first message is the start: n-1 were handled in wall.
	return rate(n-1, wall), nil
}

// cpuUsageAt is the CPU time the server and this process had used at a
// moment.
type cpuUsageAt struct{ server, client time.Duration }

func sampleCPU(serverPID int) cpuUsageAt {
	s, _ := processCPU(serverPID) // zero on error: the row then shows no server CPU
	return cpuUsageAt{server: s, client: selfCPU()}
}

// writeKeyedBacklog publishes msgs to topic spread over partitions by
// UUID, and waits until they are written.
func writeKeyedBacklog(ctx context.Context, baseURL, topic string, partitions int, msgs []*message.Message) error {
	bindContext(ctx, msgs)
	pub, err := newKeyedPublisher(baseURL, partitions)
	if err != nil {
		return err
	}
	if err := pub.Publish(topic, msgs...); err != nil {
		_ = pub.Close()
		return fmt.Errorf("backlog: %w", err)
	}
	if err := pub.Close(); err != nil {
		return fmt.Errorf("backlog: %w", err)
	}
	return nil
}

// joinDrainPair is the issue 20 drain in the watermill-benchmark method:
// n messages already in a topic of one stream (written by a Publisher
// with Partitions 1, so its count is recorded as a group reads it), then
// drained through the same Router handler by a Subscriber without a group
// and by a fresh sharing ConsumerGroup with the defaults, the clock
// started before Router.Run, so Subscribe (the group's join) counts. The
// two drains go in either order (groupFirst), so that neither always
// reads the stream first.
func joinDrainPair(ctx context.Context, r *runCtx, n int, groupFirst bool) (map[string]float64, error) {
	c, err := r.b.corpusOf(jsonMode, n)
	if err != nil {
		return nil, err
	}
	baseURL := r.b.baseURL()
	topic := "bench-join-" + uuid.NewString()[:8]
	defer func() {
		for _, s := range partitionStreams(topic, 1) {
			r.b.deleteStream(baseURL + "/" + s)
		}
	}()
	if err := writeKeyedBacklog(ctx, baseURL, topic, 1, c.messages()); err != nil {
		return nil, err
	}
	var plain, grouped drain
	drainPlain := func() (err error) {
		plain, err = groupDrainRun(ctx, r, baseURL, topic, n, nil, "", nil, "10-nogroup", "10-nogroup-first")
		return err
	}
	drainGroup := func() (err error) {
		grouped, err = groupDrainRun(ctx, r, baseURL, topic, n, nil, "bench-join-"+uuid.NewString()[:8], nil, "10-group", "10-group-first", "10-group-drain")
		return err
	}
	order := []func() error{drainPlain, drainGroup}
	if groupFirst {
		order[0], order[1] = order[1], order[0]
	}
	for _, f := range order {
		if err := f(); err != nil {
			return nil, err
		}
	}
	return map[string]float64{
		"10-nogroup":       plain.rate,
		"10-nogroup-first": millis(plain.first.Sub(plain.start)),
		"10-group":         grouped.rate,
		"10-group-first":   millis(grouped.first.Sub(grouped.start)),
		// The first message is the start: n-1 were handled after it.
		"10-group-drain": rate(n-1, grouped.done.Sub(grouped.first)),
	}, nil
}

// groupShareAll is one run of the drain rows, interleaved: the issue 20
// pair (no group, then a group, or the other way round: groupFirst), then
// one member on a topic of one stream (the reference of the rest), then
// 1, 2 and 4 members on a topic of 4 partitions.
func groupShareAll(ctx context.Context, r *runCtx, n, joinN int, groupFirst bool) (map[string]float64, error) {
	values, err := joinDrainPair(ctx, r, joinN, groupFirst)
	if err != nil {
		return nil, fmt.Errorf("10-nogroup/10-group: %w", err)
	}
	for _, c := range []struct {
		id                  string
		partitions, members int
	}{{"10-one", 1, 1}, {"10-p4m1", 4, 1}, {"10-p4m2", 4, 2}, {"10-p4m4", 4, 4}} {
		v, err := groupShareRun(ctx, r, n, c.partitions, c.members, c.id)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.id, err)
		}
		values[c.id] = v
	}
	return values, nil
}
