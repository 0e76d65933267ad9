package systemtest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	ds "github.com/durablestreams/watermill-durablestreams"
	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

// partitionKey is PublisherConfig.PartitionKey's default.
const partitionKey = "partition_key"

// groupSubscriber is a member with short timeouts, for tests: a session
// of 2 s, heartbeats every 200 ms.
func groupSubscriber(t *testing.T, base, groupName, member string, partitions int) *ds.Subscriber {
	t.Helper()
	sub, err := ds.NewSubscriber(ds.SubscriberConfig{
		BaseURL:           base,
		ConsumerGroup:     groupName,
		NackResendDelay:   10 * time.Millisecond,
		CommitInterval:    50 * time.Millisecond,
		MemberID:          member,
		Partitions:        partitions,
		SessionTimeout:    2 * time.Second,
		HeartbeatInterval: 200 * time.Millisecond,
	}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, sub.Close()) })
	return sub
}

func partitionedPublisher(t *testing.T, base string, partitions int) *ds.Publisher {
	t.Helper()
	pub, err := ds.NewPublisher(ds.PublisherConfig{BaseURL: base, Partitions: partitions}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, pub.Close()) })
	return pub
}

// handled is what the members of a test did with the messages.
type handled struct {
	mu     sync.Mutex
	times  map[string]int    // message UUID -> handlings
	by     map[string]int    // member -> handlings
	last   map[string]int    // key -> last seq
	order  int               // per-key order violations
	member map[string]string // message UUID -> last member
	grew   chan struct{}
}

func newHandled() *handled {
	return &handled{times: map[string]int{}, by: map[string]int{}, last: map[string]int{}, member: map[string]string{}, grew: make(chan struct{}, 1)}
}

func (h *handled) consume(t *testing.T, member string, msgs <-chan *message.Message) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for msg := range msgs {
			seq, _ := strconv.Atoi(msg.Metadata.Get("seq"))
			key := msg.Metadata.Get(partitionKey)
			h.mu.Lock()
			h.times[msg.UUID]++
			h.by[member]++
			h.member[msg.UUID] = member
			if h.times[msg.UUID] == 1 && seq <= h.last[key] {
				h.order++
			}
			h.last[key] = max(h.last[key], seq)
			h.mu.Unlock()
			msg.Ack()
			select {
			case h.grew <- struct{}{}:
			default:
			}
		}
	}()
	return &wg
}

func (h *handled) distinct() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.times)
}

func (h *handled) waitDistinct(t *testing.T, n int, within time.Duration) {
	t.Helper()
	timeout := time.After(within)
	for h.distinct() < n {
		select {
		case <-h.grew:
		case <-timeout:
			t.Fatalf("%d of %d messages handled within %v", h.distinct(), n, within)
		}
	}
}

func keyed(key string, seq int) *message.Message {
	msg := message.NewMessage(watermill.NewUUID(), []byte(`{}`))
	msg.Metadata.Set(partitionKey, key)
	msg.Metadata.Set("seq", strconv.Itoa(seq))
	return msg
}

func TestGroupSubscribersShareTenThousandMessagesOverFourPartitions(t *testing.T) {
	base := dstest.StreamURL(t)
	const topic, parts, total = "orders", 4, 10_000
	pub := partitionedPublisher(t, base, parts)
	h := newHandled()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var consumers []*sync.WaitGroup
	for _, id := range []string{"a", "b", "c"} {
		sub := groupSubscriber(t, base, "billing", id, parts)
		msgs, err := sub.Subscribe(ctx, topic)
		require.NoError(t, err)
		consumers = append(consumers, h.consume(t, id, msgs))
	}
	// Let the three share the partitions out before the messages come,
	// so that the spread is the assignment's, not a race of the first.
	time.Sleep(time.Second) // members' warm-up (1.5 heartbeats) and claims; not a synchronisation of the result
	seq := map[string]int{}
	var batch []*message.Message
	for i := range total {
		key := "customer-" + strconv.Itoa(i%100)
		seq[key]++
		batch = append(batch, keyed(key, seq[key]))
		if len(batch) == 100 {
			require.NoError(t, pub.Publish(topic, batch...))
			batch = nil
		}
	}
	h.waitDistinct(t, total, 2*time.Minute)
	cancel()
	for _, c := range consumers {
		c.Wait()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	dups := 0
	for _, n := range h.times {
		dups += n - 1
	}
	assert.Zero(t, dups, "messages handled more than once with nobody dying")
	assert.Zero(t, h.order, "per-key order violations")
	for _, id := range []string{"a", "b", "c"} {
		assert.GreaterOrEqual(t, h.by[id], total/6, "member %s's share: %v", id, h.by)
	}
	t.Logf("per member: %v", h.by)
}

func TestGroupSubscriberStandbyTakesOverOnClose(t *testing.T) {
	base := dstest.StreamURL(t)
	const topic = "single"
	pub, err := ds.NewPublisher(ds.PublisherConfig{BaseURL: base}, nil)
	require.NoError(t, err)
	defer pub.Close()
	h := newHandled()
	active := groupSubscriber(t, base, "g", "active", 0)
	msgs, err := active.Subscribe(context.Background(), topic)
	require.NoError(t, err)
	activeDone := h.consume(t, "active", msgs)
	for i := range 50 {
		require.NoError(t, pub.Publish(topic, keyed("k", i+1)))
	}
	h.waitDistinct(t, 50, 10*time.Second)

	standby := groupSubscriber(t, base, "g", "standby", 0)
	smsgs, err := standby.Subscribe(context.Background(), topic)
	require.NoError(t, err)
	standbyDone := h.consume(t, "standby", smsgs)
	for i := range 50 {
		require.NoError(t, pub.Publish(topic, keyed("k", 51+i)))
	}
	h.waitDistinct(t, 100, 10*time.Second)

	closed := time.Now()
	require.NoError(t, active.Close())
	activeDone.Wait()
	require.NoError(t, pub.Publish(topic, keyed("k", 101)))
	h.waitDistinct(t, 101, 10*time.Second)
	t.Logf("standby handled a message %v after the active member's Close began", time.Since(closed))
	assert.Less(t, time.Since(closed), 1500*time.Millisecond, "takeover on Close took more than about a second")
	require.NoError(t, standby.Close())
	standbyDone.Wait()

	h.mu.Lock()
	defer h.mu.Unlock()
	assert.Equal(t, 100, h.by["active"], "the active member handles everything while it lives: %v", h.by)
	assert.Equal(t, 1, h.by["standby"], "%v", h.by)
	for id, n := range h.times {
		assert.Equal(t, 1, n, "message %s handled %d times", id, n)
	}
}

func TestPartitionCountMismatchIsAnError(t *testing.T) {
	base := dstest.StreamURL(t)
	four := partitionedPublisher(t, base, 4)
	require.NoError(t, four.Publish("t", keyed("k", 1)))
	eight := partitionedPublisher(t, base, 8)
	err := eight.Publish("t", keyed("k", 1))
	require.ErrorIs(t, err, ds.ErrPartitionMismatch)
	assert.Contains(t, err.Error(), "4 partitions recorded")

	sub, err := ds.NewSubscriber(ds.SubscriberConfig{BaseURL: base, ConsumerGroup: "g", Partitions: 2}, nil)
	require.NoError(t, err)
	defer sub.Close()
	_, err = sub.Subscribe(context.Background(), "t")
	require.ErrorIs(t, err, ds.ErrPartitionMismatch)

	_, err = ds.NewSubscriber(ds.SubscriberConfig{BaseURL: base, Partitions: 2}, nil)
	require.True(t, errors.Is(err, ds.ErrInvalidConfig), "no group: %v", err)
	_, err = ds.NewSubscriber(ds.SubscriberConfig{BaseURL: base, Checkpoint: "g", OffsetStore: ds.NewMemoryOffsetStore(), MemberID: "m"}, nil)
	require.True(t, errors.Is(err, ds.ErrInvalidConfig), "group settings with an OffsetStore: %v", err)

}

func TestGroupSubscriberCloseLeavesNoGoroutines(t *testing.T) {
	base := dstest.StreamURL(t)
	before := runtime.NumGoroutine()
	pub := partitionedPublisher(t, base, 2)
	for i := range 20 {
		require.NoError(t, pub.Publish("t", keyed("k"+strconv.Itoa(i), 1)))
	}
	sub, err := ds.NewSubscriber(ds.SubscriberConfig{
		BaseURL: base, ConsumerGroup: "g",
		SessionTimeout: 2 * time.Second, HeartbeatInterval: 200 * time.Millisecond,
	}, nil)
	require.NoError(t, err)
	msgs, err := sub.Subscribe(context.Background(), "t")
	require.NoError(t, err)
	for range 20 {
		(<-msgs).Ack()
	}
	require.NoError(t, sub.Close())
	for range msgs {
		t.Fatal("a message after Close")
	}
	require.NoError(t, pub.Close())
	dstest.RequireGoroutinesBackTo(t, before)
}

// TestGroupStartFromTailIsRecordedForTheNextOwner: a group that starts at
// the tail records that tail when it claims the stream, so a member that
// takes over later goes on from there, and what was published in between
// is not skipped.
func TestGroupStartFromTailIsRecordedForTheNextOwner(t *testing.T) {
	base := dstest.StreamURL(t)
	pub, err := ds.NewPublisher(ds.PublisherConfig{BaseURL: base}, nil)
	require.NoError(t, err)
	defer pub.Close()
	require.NoError(t, pub.Publish("t", keyed("old", 1))) // before the group: not for it
	member := func(id string) *ds.Subscriber {
		sub, err := ds.NewSubscriber(ds.SubscriberConfig{
			BaseURL: base, ConsumerGroup: "g", StartFrom: ds.StartFromTail,
			MemberID: id, SessionTimeout: 2 * time.Second, HeartbeatInterval: 200 * time.Millisecond,
		}, nil)
		require.NoError(t, err)
		return sub
	}
	first := member("first")
	_, err = first.Subscribe(context.Background(), "t")
	require.NoError(t, err)
	// The first member claims the stream (after its warm-up) and records
	// the tail in the position log of its epoch; then it leaves without
	// having seen any message.
	root := base + "/__groups/g/t/streams/t"
	var epoch int64
	require.Eventually(t, func() bool {
		var recs []struct {
			Owner string `json:"owner"`
			Epoch int64  `json:"epoch"`
		}
		_ = json.Unmarshal(readRaw(t, root), &recs)
		for _, r := range recs {
			if r.Owner == "first" {
				epoch = r.Epoch
				return true
			}
		}
		return false
	}, 10*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool {
		return strings.Contains(string(readRaw(t, root+"/"+strconv.FormatInt(epoch, 10)+".0")), `"offset"`)
	}, 10*time.Second, 20*time.Millisecond, "the tail is recorded after the claim")
	require.NoError(t, first.Close())
	between := keyed("between", 1)
	require.NoError(t, pub.Publish("t", between))

	second := member("second")
	defer second.Close()
	msgs, err := second.Subscribe(context.Background(), "t")
	require.NoError(t, err)
	select {
	case msg := <-msgs:
		assert.Equal(t, between.UUID, msg.UUID, "the next owner must go on from the recorded tail")
		msg.Ack()
	case <-time.After(10 * time.Second):
		t.Fatal("the message published between the two owners was skipped")
	}
}

// readRaw returns a stream's whole body, or nil while it does not exist.
func readRaw(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url + "?offset=-1")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	body, _ := io.ReadAll(resp.Body)
	return body
}

// TestGroupClosedStreamIsKeptNotReclaimedInALoop: a stream that ends (it
// was closed) stays with its owner; handing it back would have it claimed
// again at once, over and over.
func TestGroupClosedStreamIsKeptNotReclaimedInALoop(t *testing.T) {
	base := dstest.StreamURL(t)
	pub, err := ds.NewPublisher(ds.PublisherConfig{BaseURL: base}, nil)
	require.NoError(t, err)
	defer pub.Close()
	require.NoError(t, pub.Publish("t", keyed("k", 1), keyed("k", 2)))
	_, err = pub.CloseStream(context.Background(), "t", nil)
	require.NoError(t, err)
	sub := groupSubscriber(t, base, "g", "a", 0)
	msgs, err := sub.Subscribe(context.Background(), "t")
	require.NoError(t, err)
	for range 2 {
		select {
		case msg := <-msgs:
			msg.Ack()
		case <-time.After(10 * time.Second):
			t.Fatal("messages of the closed stream never came")
		}
	}
	// An observation window of ten heartbeats: a loop would claim the
	// stream about forty times in it.
	time.Sleep(2 * time.Second)
	var root []json.RawMessage
	require.NoError(t, json.Unmarshal(readRaw(t, base+"/__groups/g/t/streams/t"), &root))
	assert.LessOrEqual(t, len(root), 2, "the ended stream was claimed again and again: %d root records", len(root))
}
