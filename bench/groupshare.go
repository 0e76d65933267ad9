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
// join (they listen 1.5 heartbeat intervals before claiming) is left out:
// the rows measure throughput, not start-up. The CPU columns are sampled
// at the same two points.

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

// groupShareAll is one run of the drain rows, interleaved: one member on a
// topic of one stream (the reference), then 1, 2 and 4 members on a topic
// of 4 partitions.
func groupShareAll(ctx context.Context, r *runCtx, n int) (map[string]float64, error) {
	values := make(map[string]float64)
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
