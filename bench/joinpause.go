package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	durablestreams "github.com/durablestreams/watermill-durablestreams"
)

// The join-pause rows (issue 20) ask what a join costs the partitions it
// does not move. A sharing group of two members (library defaults) reads
// a topic of joinPartitions partitions while a publisher appends a
// message to every partition every trickleEvery. Once the two members
// have split the partitions, a window of joinWindow with no join is the
// baseline; then a third member subscribes and a second window of the same
// length starts. For every partition the longest gap between consecutive
// deliveries in a window is taken (from the last delivery before the
// window to the first in it, ..., from the last one to the window's end,
// so that a partition that stops counts). A partition moves if its owner
// (the member that delivered it last) at the window's end is not the one
// before the join; for the others, the gaps of both windows are compared.
// For the moved ones, the pause is from the third member's Subscribe to
// the first delivery by the new owner.

const joinPartitions = 8

// partitionMeta is the metadata key that carries a message's partition
// index to the consumer.
const partitionMeta = "bench_partition"

// deliveryLog records who delivered each partition's messages, and when.
type deliveryLog struct {
	mu    sync.Mutex
	parts [][]delivery
}

type delivery struct {
	member int
	at     time.Time
}

func (l *deliveryLog) add(p, member int, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.parts[p] = append(l.parts[p], delivery{member: member, at: at})
}

// snapshot copies the log.
func (l *deliveryLog) snapshot() [][]delivery {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([][]delivery, len(l.parts))
	for i, d := range l.parts {
		out[i] = slices.Clone(d)
	}
	return out
}

// owner is the member that delivered ds last before t (-1: none).
func owner(ds []delivery, t time.Time) int {
	o := -1
	for _, d := range ds {
		if d.at.After(t) {
			break
		}
		o = d.member
	}
	return o
}

// longestGap is the longest time in [from, to] without a delivery of ds,
// counted from the last delivery before from (or from itself) to the
// first in the window, between consecutive ones, and from the last one to
// to.
func longestGap(ds []delivery, from, to time.Time) time.Duration {
	prev := from
	var longest time.Duration
	for _, d := range ds {
		if d.at.After(to) {
			break
		}
		if d.at.Before(from) {
			prev = d.at
			continue
		}
		longest = max(longest, d.at.Sub(prev))
		prev = d.at
	}
	return max(longest, to.Sub(prev))
}

// consumeInto acks member's messages and logs them; done closes when
// msgs does.
func consumeInto(l *deliveryLog, member int, msgs <-chan *message.Message) (done <-chan struct{}) {
	d := make(chan struct{})
	go func() {
		defer close(d)
		for msg := range msgs {
			now := time.Now()
			if p, err := strconv.Atoi(msg.Metadata.Get(partitionMeta)); err == nil && p >= 0 && p < len(l.parts) {
				l.add(p, member, now)
			}
			msg.Ack()
		}
	}()
	return d
}

// trickleAll publishes a message to every partition of topic every
// trickleEvery until ctx is done.
func trickleAll(ctx context.Context, pub message.Publisher, topic string, keys []string) error {
	t := time.NewTicker(trickleEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := publishRound(ctx, pub, topic, keys); err != nil && ctx.Err() == nil {
				return err
			}
		}
	}
}

// publishRound publishes a message to every partition of topic.
func publishRound(ctx context.Context, pub message.Publisher, topic string, keys []string) error {
	msgs := make([]*message.Message, len(keys))
	for i, key := range keys {
		msgs[i] = message.NewMessage(uuid.NewString(), []byte(`{}`))
		msgs[i].Metadata.Set("partition_key", key)
		msgs[i].Metadata.Set(partitionMeta, strconv.Itoa(i))
		msgs[i].SetContext(ctx)
	}
	return pub.Publish(topic, msgs...)
}

// settled reports whether, in the last span before now, every partition
// was delivered by one member only and each of the members owns its
// share (partitions/members or one more).
func settled(log [][]delivery, members int, now time.Time, span time.Duration) bool {
	counts := make(map[int]int)
	for _, ds := range log {
		o := -1
		for _, d := range ds {
			if d.at.Before(now.Add(-span)) {
				continue
			}
			if o != -1 && d.member != o {
				return false
			}
			o = d.member
		}
		if o == -1 {
			return false
		}
		counts[o]++
	}
	if len(counts) != members {
		return false
	}
	for _, c := range counts {
		if c < len(log)/members || c > len(log)/members+1 {
			return false
		}
	}
	return true
}

// joinPauseRun is one run: it returns the rows' values in milliseconds
// (12-moved: a count).
func joinPauseRun(ctx context.Context, r *runCtx, window time.Duration) (map[string]float64, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	baseURL := r.b.baseURL()
	topic := "bench-join-pause-" + uuid.NewString()[:8]
	group := "bench-join-pause-" + uuid.NewString()[:8]
	defer func() {
		for _, s := range partitionStreams(topic, joinPartitions) {
			r.b.deleteStream(baseURL + "/" + s)
		}
	}()

	pub, err := newPartitionedPublisher(baseURL, joinPartitions)
	if err != nil {
		return nil, err
	}
	defer pub.Close()
	keys := partitionKeys(joinPartitions)
	// The first round records the topic's partition count before any
	// member reads it (a member would record 1 otherwise).
	if err := publishRound(ctx, pub, topic, keys); err != nil {
		return nil, err
	}
	trickleCtx, stopTrickle := context.WithCancel(ctx)
	trickled := make(chan error, 1)
	go func() { trickled <- trickleAll(trickleCtx, pub, topic, keys) }()
	trickleErr := sync.OnceValue(func() error { stopTrickle(); return <-trickled })
	defer func() { _ = trickleErr() }()

	log := &deliveryLog{parts: make([][]delivery, joinPartitions)}
	var (
		members []groupMember
		dones   []<-chan struct{}
	)
	defer func() {
		for i, m := range members {
			_ = m.Close()
			<-dones[i]
		}
	}()
	join := func() error {
		m, err := newGroupMember(baseURL, group, "", nil, 0, 0)
		if err != nil {
			return err
		}
		members = append(members, m)
		msgs, err := m.Subscribe(ctx, topic)
		if err != nil {
			dones = append(dones, closedChan())
			return err
		}
		dones = append(dones, consumeInto(log, len(members)-1, msgs))
		return nil
	}
	for range 2 {
		if err := join(); err != nil {
			return nil, err
		}
	}
	// The control: a Subscriber without a group reading partition 0's
	// stream, so that a pause of the machine or the server shows in it too.
	ctl := &deliveryLog{parts: make([][]delivery, joinPartitions)}
	// (TopicURL: the partition's name is reserved as a topic.)
	ctlURL := baseURL + "/" + partitionStreamName(topic, 0, joinPartitions)
	ctlSub, err := durablestreams.NewSubscriber(durablestreams.SubscriberConfig{
		TopicURL: func(string) (string, error) { return ctlURL, nil },
	}, nil)
	if err != nil {
		return nil, err
	}
	ctlMsgs, err := ctlSub.Subscribe(ctx, topic)
	if err != nil {
		_ = ctlSub.Close()
		return nil, err
	}
	ctlDone := consumeInto(ctl, 0, ctlMsgs)
	defer func() { _ = ctlSub.Close(); <-ctlDone }()
	// Wait until the two have split the partitions and kept them for a
	// while: the baseline must not hold their own rebalance.
	const stable = 500 * time.Millisecond
	deadline := time.Now().Add(30 * time.Second)
	for !settled(log.snapshot(), 2, time.Now(), stable) {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("two members did not split %d partitions within 30s", joinPartitions)
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case err := <-trickled:
			trickled <- err // for trickleErr
			return nil, fmt.Errorf("publisher stopped: %v", err)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}

	var joinAt, end time.Time
	base := time.Now()
	if _, err := r.timed(func() error {
		if err := sleepCtx(ctx, window); err != nil {
			return err
		}
		joinAt = time.Now()
		if err := join(); err != nil {
			return err
		}
		if err := sleepCtx(ctx, time.Until(joinAt.Add(window))); err != nil {
			return err
		}
		end = time.Now()
		return nil
	}, "12-base-p50", "12-base-max", "12-kept-p50", "12-kept-max", "12-moved-p50", "12-moved-max", "12-moved", "12-shuffled", "12-ctl-base", "12-ctl-join"); err != nil {
		return nil, err
	}
	if err := trickleErr(); err != nil {
		return nil, fmt.Errorf("publisher: %w", err)
	}

	snap := log.snapshot()
	var baseGaps, keptGaps, movedPauses []time.Duration
	newcomer, shuffled := 0, 0
	for p, ds := range snap {
		before, after := owner(ds, joinAt), owner(ds, end)
		if before == -1 || after == -1 {
			return nil, fmt.Errorf("partition %d: no delivery before the join or none after it", p)
		}
		if after == 2 {
			newcomer++
		}
		if before == after {
			baseGaps = append(baseGaps, longestGap(ds, base, joinAt))
			keptGaps = append(keptGaps, longestGap(ds, joinAt, end))
			continue
		}
		if after != 2 {
			shuffled++
		}
		i := slices.IndexFunc(ds, func(d delivery) bool { return d.member == after && d.at.After(joinAt) })
		movedPauses = append(movedPauses, ds[i].at.Sub(joinAt))
	}
	ctlLog := ctl.snapshot()[0]
	if len(ctlLog) == 0 {
		return nil, fmt.Errorf("the control Subscriber delivered nothing")
	}
	if newcomer < joinPartitions/3 {
		return nil, fmt.Errorf("the third member delivered %d partitions in the %v after its join, want %d or more", newcomer, window, joinPartitions/3)
	}
	return map[string]float64{
		"12-base-p50":  millis(percentile(baseGaps, 50)),
		"12-base-max":  millis(percentile(baseGaps, 100)),
		"12-kept-p50":  millis(percentile(keptGaps, 50)),
		"12-kept-max":  millis(percentile(keptGaps, 100)),
		"12-moved-p50": millis(percentile(movedPauses, 50)),
		"12-moved-max": millis(percentile(movedPauses, 100)),
		"12-moved":     float64(len(movedPauses)),
		"12-shuffled":  float64(shuffled),
		"12-ctl-base":  millis(longestGap(ctlLog, base, joinAt)),
		"12-ctl-join":  millis(longestGap(ctlLog, joinAt, end)),
	}, nil
}

func closedChan() <-chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

// joinPauseJob is row 12; window is the length of each window.
func joinPauseJob(runs int, window time.Duration) job {
	return job{group: "12", runs: runs, lines: []line{
		{id: "12-base-p50", what: fmt.Sprintf("sharing group (defaults), %d partitions, 2 members, a message per partition every %v: with no join, each partition's longest gap between deliveries in %v, p50 over the partitions row 12-kept measures", joinPartitions, trickleEvery, window), unit: "ms"},
		{id: "12-base-max", what: "the same, max over those partitions", unit: "ms"},
		{id: "12-kept-p50", what: "a third member joins: the same gap over the next window of the same length (from its Subscribe), p50 over the partitions that do not move", unit: "ms", ratios: []ratio{{to: "12-base-p50"}}},
		{id: "12-kept-max", what: "the same, max over the partitions that do not move", unit: "ms", ratios: []ratio{{to: "12-base-max", atMost: 2}, {to: "12-ctl-join"}}},
		{id: "12-ctl-base", what: "control: a Subscriber without a group reading partition 0's stream meanwhile, its longest gap in the window with no join", unit: "ms"},
		{id: "12-ctl-join", what: "control: the same in the window of the join (a pause of the machine or server shows here too)", unit: "ms", ratios: []ratio{{to: "12-ctl-base"}}},
		{id: "12-moved-p50", what: "partitions that move: the third member's Subscribe to the first delivery by the new owner, p50", unit: "ms"},
		{id: "12-moved-max", what: "the same, max", unit: "ms"},
		{id: "12-moved", what: "diagnostic: partitions that moved in the join (the third member's share is 2 or 3)", unit: "partitions"},
		{id: "12-shuffled", what: "diagnostic: of those, partitions that moved between the two members already there (the least possible is 0)", unit: "partitions"},
	}, run: func(ctx context.Context, r *runCtx) (map[string]float64, error) {
		return joinPauseRun(ctx, r, window)
	}}
}
