package systemtest

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	ds "github.com/durablestreams/watermill-durablestreams"
	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
	"github.com/durablestreams/watermill-durablestreams/internal/partition"
)

// nestedHook maps "a/b" to base/a/b, each part escaped: the TopicURL hook
// ErrInvalidTopic's doc suggests for nested topics.
func nestedHook(base string) func(string) (string, error) {
	return func(topic string) (string, error) {
		parts := strings.Split(topic, "/")
		for i := range parts {
			parts[i] = url.PathEscape(parts[i])
		}
		return base + "/" + strings.Join(parts, "/"), nil
	}
}

// streamExists: a HEAD on the stream's URL answers 200.
func streamExists(t *testing.T, streamURL string) bool {
	t.Helper()
	resp, err := http.Head(streamURL)
	require.NoError(t, err)
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// TestReservedTopicsAreRejected: a topic that names one of the library's
// own streams (a partition, a partition record, the trees of groups and
// offset stores) is ErrInvalidTopic at every entry point, with or without
// a TopicURL hook, and nothing is written for it. Before, "orders.p0" was
// partition 0 of "orders" and "x.partitions" its partition record.
func TestReservedTopicsAreRejected(t *testing.T) {
	base := dstest.StreamURL(t)
	plainPub, _ := newTestPublisher(t, ds.PublisherConfig{BaseURL: base})
	partPub := partitionedPublisher(t, base, 2)
	hookPub, _ := newTestPublisher(t, ds.PublisherConfig{BaseURL: base, TopicURL: nestedHook(base)})
	plainSub := newTestSubscriber(t, ds.SubscriberConfig{BaseURL: base})
	groupSub := groupSubscriber(t, base, "g", "", 0)
	hookSub := newTestSubscriber(t, ds.SubscriberConfig{BaseURL: base, TopicURL: nestedHook(base), ConsumerGroup: "g"})

	for _, c := range []struct {
		topic, why string
		nested     bool // only a TopicURL hook can map it
	}{
		{topic: "orders.p0", why: `".p0" is reserved for partitioned topics`},
		{topic: "orders.p17", why: `".p17" is reserved for partitioned topics`},
		{topic: "a.b.p3", why: `".p3" is reserved`},
		{topic: "x.partitions", why: `".partitions" is reserved for partitioned topics`},
		{topic: "tenant/x.partitions", why: `".partitions" is reserved`, nested: true},
		{topic: "invoices.p3.eo-writer", why: `".eo-writer" is reserved for the writer claims`},
		{topic: "invoices.eo-writer", why: `".eo-writer" is reserved`},
		{topic: "__groups", why: `"__groups" is reserved`},
		{topic: "__offsets", why: `"__offsets" is reserved`},
		{topic: "__groups/g/t/members", why: `"__groups" is reserved`, nested: true},
		{topic: "__offsets/g/t", why: `"__offsets" is reserved`, nested: true},
		// PROTOCOL.md §6: the segment is the server's control route.
		{topic: "__ds", why: `"__ds" is reserved by the protocol`},
		{topic: "__ds/subscriptions/x", why: `"__ds" is reserved by the protocol`, nested: true},
		{topic: "tenant/__ds/subscriptions", why: `"__ds" is reserved by the protocol`, nested: true},
		// Dot segments through a hook would leave the topic's place.
		{topic: "t/../__groups/g/t/members", why: "a dot segment", nested: true},
		{topic: "./__groups/g/t/members", why: "a dot segment", nested: true},
	} {
		t.Run(c.topic, func(t *testing.T) {
			pubs := map[string]*ds.Publisher{"hook": hookPub}
			subs := map[string]*ds.Subscriber{"hook group": hookSub}
			if !c.nested {
				pubs["plain"], pubs["partitioned"] = plainPub, partPub
				subs["plain"], subs["group"] = plainSub, groupSub
			}
			check := func(what string, err error) {
				t.Helper()
				require.ErrorIs(t, err, ds.ErrInvalidTopic, what)
				var ite *ds.InvalidTopicError
				require.ErrorAs(t, err, &ite, what)
				require.Equal(t, c.topic, ite.Topic, what)
				require.Contains(t, err.Error(), c.why, what)
				require.True(t, strings.HasPrefix(err.Error(), "durablestreams: "), "%s: %v", what, err)
			}
			for name, pub := range pubs {
				check(name+" Publish", pub.Publish(c.topic, message.NewMessage(watermill.NewUUID(), []byte(`{}`))))
				_, err := pub.CloseStream(t.Context(), c.topic, nil)
				check(name+" CloseStream", err)
			}
			for name, sub := range subs {
				_, err := sub.Subscribe(t.Context(), c.topic)
				check(name+" Subscribe", err)
				check(name+" SubscribeInitialize", sub.SubscribeInitialize(c.topic))
			}
			hooked, err := nestedHook(base)(c.topic)
			require.NoError(t, err)
			require.False(t, streamExists(t, hooked), "a stream was created for %q", c.topic)
		})
	}
}

// TestTopicsNearTheReservedNamesWork: only the exact reserved forms are
// rejected; the names around them are ordinary topics, end to end.
func TestTopicsNearTheReservedNamesWork(t *testing.T) {
	base := dstest.StreamURL(t)
	pub, _ := newTestPublisher(t, ds.PublisherConfig{BaseURL: base})
	sub := newTestSubscriber(t, ds.SubscriberConfig{BaseURL: base})
	for _, topic := range []string{
		"p0", "partitions", "orders.p", "orders.px", "orders.p1x", "orders.P1",
		"orders.partition", "orders.partitions2", "orders-p0", "__groupsx", "_groups", "x.__groups",
		"__groups-x", "__offsets.log", "__offsetsx", "__dsx", "_ds", "x__ds",
		"eo-writer", "x.eo-writers", "x.eo-writer2",
	} {
		t.Run(topic, func(t *testing.T) {
			msg := message.NewMessage(watermill.NewUUID(), []byte(`{}`))
			require.NoError(t, pub.Publish(topic, msg))
			ch, err := sub.Subscribe(t.Context(), topic)
			require.NoError(t, err)
			got := receive(t, ch)
			require.Equal(t, msg.UUID, got.UUID)
			got.Ack()
		})
	}
}

// TestUnreadablePartitionRecordIsStreamConflict: a stream of another kind
// where a topic's partition record belongs (written before such names were
// reserved) fails a group's Subscribe with ErrStreamConflict, not with an
// error no sentinel matches.
func TestUnreadablePartitionRecordIsStreamConflict(t *testing.T) {
	base := dstest.StreamURL(t)
	httpDo(t, "PUT", base+"/x.partitions", "application/json", "")
	httpDo(t, "POST", base+"/x.partitions", "application/json", `[{"not":"a record"}]`)

	for _, partitions := range []int{0, 2} {
		sub := groupSubscriber(t, base, "g", "", partitions)
		_, err := sub.Subscribe(t.Context(), "x")
		require.ErrorIs(t, err, ds.ErrStreamConflict, "Partitions %d: %v", partitions, err)
		require.Contains(t, err.Error(), "x.partitions")
	}
	pub := partitionedPublisher(t, base, 2)
	err := pub.Publish("x", keyed("k", 1))
	require.ErrorIs(t, err, ds.ErrStreamConflict)
}

// TestGroupSharesANestedTopicThroughTopicURL: a nested topic that the
// TopicURL hook maps works in a sharing group as it does for Publish and
// a plain Subscribe: partitioned, next to another nested topic with the
// same last part, each member gets its own topic's messages.
func TestGroupSharesANestedTopicThroughTopicURL(t *testing.T) {
	base := dstest.StreamURL(t)
	hook := nestedHook(base)
	pub, err := ds.NewPublisher(ds.PublisherConfig{BaseURL: base, TopicURL: hook, Partitions: 2}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, pub.Close()) })

	const n = 20
	sent := map[string]map[string]bool{"tenant-a/orders": {}, "tenant-b/orders": {}}
	for topic, uuids := range sent {
		for i := range n {
			msg := keyed(string(rune('a'+i)), i+1)
			uuids[msg.UUID] = true
			require.NoError(t, pub.Publish(topic, msg))
		}
	}
	for topic, uuids := range sent {
		sub, err := ds.NewSubscriber(ds.SubscriberConfig{
			BaseURL: base, TopicURL: hook, ConsumerGroup: "g",
			SessionTimeout: 2 * time.Second, HeartbeatInterval: 200 * time.Millisecond,
			NackResendDelay: 10 * time.Millisecond, CommitInterval: 50 * time.Millisecond,
		}, nil)
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(t.Context())
		msgs, err := sub.Subscribe(ctx, topic)
		require.NoError(t, err, topic)
		h := newHandled()
		done := h.consume(t, topic, msgs)
		h.waitDistinct(t, n, 20*time.Second)
		cancel()
		done.Wait()
		require.NoError(t, sub.Close())
		h.mu.Lock()
		for uuid := range h.times {
			require.True(t, uuids[uuid], "%s: a message of another topic was delivered", topic)
		}
		h.mu.Unlock()
		// The group's streams of the topic are under BaseURL/__groups/,
		// the topic escaped into one segment.
		require.True(t, streamExists(t, base+"/__groups/g/"+url.PathEscape(topic)+"/streams/"+url.PathEscape(partition.StreamName(topic, 0, 2))), topic)
	}
}

// TestGroupRejectsNestedTopicsItCannotName: a nested topic whose parts
// the group's own streams use, or that has an empty or dot part, is
// ErrInvalidTopic in a sharing group, naming why; it was ErrInvalidConfig
// for every nested topic.
func TestGroupRejectsNestedTopicsItCannotName(t *testing.T) {
	base := dstest.StreamURL(t)
	sub := newTestSubscriber(t, ds.SubscriberConfig{BaseURL: base, TopicURL: nestedHook(base), ConsumerGroup: "g"})
	for _, c := range []struct{ topic, why string }{
		{"a/members", `has a part "members"`},
		{"streams/b", `has a part "streams"`},
		{"a//b", `has a part "" that is empty`},
		{"a/../b", `has a part ".." that is a dot segment`},
		{"a/", `has a part "" that is empty`},
	} {
		_, err := sub.Subscribe(t.Context(), c.topic)
		require.ErrorIs(t, err, ds.ErrInvalidTopic, c.topic)
		require.NotErrorIs(t, err, ds.ErrInvalidConfig, c.topic)
		require.Contains(t, err.Error(), c.why, c.topic)
		require.ErrorIs(t, sub.SubscribeInitialize(c.topic), ds.ErrInvalidTopic, c.topic)
	}
}

// TestNewSubscriberRejectsWhatAGroupSubscribeWould: every setting of a
// sharing group that Subscribe would reject fails NewSubscriber, after
// the defaults are filled in, with ErrInvalidConfig naming the field as
// written in Go; and what NewSubscriber accepts, Subscribe joins with.
func TestNewSubscriberRejectsWhatAGroupSubscribeWould(t *testing.T) {
	base := dstest.StreamURL(t)
	hook := nestedHook(base)
	for _, c := range []struct {
		name string
		cfg  ds.SubscriberConfig
		want string // "" if valid; else a part of the error
	}{
		{"exactly a third", ds.SubscriberConfig{SessionTimeout: 3 * time.Second, HeartbeatInterval: time.Second}, ""},
		{"a quarter", ds.SubscriberConfig{SessionTimeout: 4 * time.Second, HeartbeatInterval: time.Second}, ""},
		{"defaults", ds.SubscriberConfig{}, ""},
		{"TopicURL with BaseURL", ds.SubscriberConfig{TopicURL: hook}, ""},
		{"over a third", ds.SubscriberConfig{SessionTimeout: 2999 * time.Millisecond, HeartbeatInterval: time.Second}, "HeartbeatInterval 1s must be at most a third of SessionTimeout 2.999s"},
		{"HeartbeatInterval alone over a third of the default", ds.SubscriberConfig{HeartbeatInterval: 5 * time.Second}, "HeartbeatInterval 5s must be at most a third of SessionTimeout 10s"},
		{"SessionTimeout alone under three default heartbeats", ds.SubscriberConfig{SessionTimeout: 2 * time.Second}, "HeartbeatInterval 1s must be at most a third of SessionTimeout 2s"},
		{"negative SessionTimeout", ds.SubscriberConfig{SessionTimeout: -time.Second}, "SessionTimeout is negative"},
		{"negative HeartbeatInterval", ds.SubscriberConfig{HeartbeatInterval: -time.Second}, "HeartbeatInterval is negative"},
		{"TopicURL without BaseURL", ds.SubscriberConfig{TopicURL: hook, BaseURL: "-"}, "ConsumerGroup needs BaseURL"},
		{"TopicURL with a relative BaseURL", ds.SubscriberConfig{TopicURL: hook, BaseURL: "/v1/stream"}, "BaseURL"},
		{"ConsumerGroup with a slash", ds.SubscriberConfig{ConsumerGroup: "a/b"}, `ConsumerGroup "a/b" contains a slash`},
		{"ConsumerGroup a dot segment", ds.SubscriberConfig{ConsumerGroup: ".."}, `ConsumerGroup ".." is a dot segment`},
		{"ConsumerGroup with a control character", ds.SubscriberConfig{ConsumerGroup: "a\nb"}, `ConsumerGroup "a\nb" contains a control character`},
		{"MemberID with a slash", ds.SubscriberConfig{MemberID: "a/b"}, `MemberID "a/b" contains a slash`},
		{"MemberID a dot segment", ds.SubscriberConfig{MemberID: "."}, `MemberID "." is a dot segment`},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := c.cfg
			if cfg.ConsumerGroup == "" {
				cfg.ConsumerGroup = "g"
			}
			switch cfg.BaseURL {
			case "":
				cfg.BaseURL = base
			case "-":
				cfg.BaseURL = ""
			}
			sub, err := ds.NewSubscriber(cfg, nil)
			if c.want != "" {
				require.ErrorIs(t, err, ds.ErrInvalidConfig)
				require.Contains(t, err.Error(), c.want)
				require.True(t, strings.HasPrefix(err.Error(), "durablestreams: "), err.Error())
				require.Equal(t, 1, strings.Count(err.Error(), "durablestreams:"), err.Error())
				require.NotContains(t, err.Error(), ": Group ", "the field is ConsumerGroup")
				return
			}
			require.NoError(t, err)
			defer func() { require.NoError(t, sub.Close()) }()
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			_, err = sub.Subscribe(ctx, "topic")
			require.NoError(t, err, "NewSubscriber accepted it, so Subscribe must")
		})
	}
}

// TestTopicURLHookResultIsChecked: the URL a TopicURL hook returns is
// checked as BaseURL is: one that would write into a group's members
// stream through a dot segment, into the protocol's control routes, or
// that carries a query the reader's own would break, is ErrInvalidTopic
// at every entry point, and nothing is written. Before, each was used as
// it was.
func TestTopicURLHookResultIsChecked(t *testing.T) {
	base := dstest.StreamURL(t)
	for _, c := range []struct {
		name, url, why string
	}{
		{"dot segment into a group's members stream", base + "/t/../__groups/g/t/members", "has a dot segment"},
		{"current-directory segment", base + "/./t", "has a dot segment"},
		{"escaped dot segment", base + "/t/%2e%2e/__groups/g/t/members", "has a dot segment"},
		{"control route", base + "/t/__ds/subscriptions/s", `has the reserved segment "__ds"`},
		{"offsets tree", base + "/__offsets/g/t", `has the reserved segment "__offsets"`},
		{"query", base + "/t?token=x", "has a query or fragment"},
		{"fragment", base + "/t#x", "has a query or fragment"},
		{"another scheme", "ftp://127.0.0.1/t", "is not an http or https URL"},
	} {
		t.Run(c.name, func(t *testing.T) {
			hook := func(string) (string, error) { return c.url, nil }
			pub, _ := newTestPublisher(t, ds.PublisherConfig{TopicURL: hook})
			sub := newTestSubscriber(t, ds.SubscriberConfig{TopicURL: hook})
			check := func(what string, err error) {
				t.Helper()
				require.ErrorIs(t, err, ds.ErrInvalidTopic, what)
				require.Contains(t, err.Error(), c.why, what)
				require.NotContains(t, err.Error(), "token=x", what)
			}
			check("Publish", pub.Publish("t", message.NewMessage(watermill.NewUUID(), []byte(`{}`))))
			_, err := pub.CloseStream(t.Context(), "t", nil)
			check("CloseStream", err)
			_, err = sub.Subscribe(t.Context(), "t")
			check("Subscribe", err)
			check("SubscribeInitialize", sub.SubscribeInitialize("t"))
		})
	}
	require.False(t, streamExists(t, base+"/__groups/g/t/members"), "a stream was created through a dot segment")
}
