package systemtest

import (
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	ds "github.com/durablestreams/watermill-durablestreams"
	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

// TestSharingGroupResumesAfterAnInMemoryServerRestart: an in-memory server
// restarted loses every stream, the group's coordination streams with the
// topic's. The group's member rebuilds them (a new members log, the
// ownership root claimed again from epoch 0) and delivers what is
// published to the recreated topic, every message, with the defaults but
// for a short session. Before, it never recovered (0 of 340 in 30 s).
func TestSharingGroupResumesAfterAnInMemoryServerRestart(t *testing.T) {
	srv := dstest.Private(t, dstest.Options{})
	base := srv.StreamURL(dstest.StreamPath(t))
	newPub := func() *ds.Publisher {
		pub, err := ds.NewPublisher(ds.PublisherConfig{BaseURL: base}, nil)
		require.NoError(t, err)
		t.Cleanup(func() { _ = pub.Close() })
		return pub
	}
	publish := func(pub *ds.Publisher, n int) map[string]bool {
		sent := map[string]bool{}
		for range n {
			msg := message.NewMessage(watermill.NewUUID(), []byte(`{}`))
			sent[msg.UUID] = true
			require.NoError(t, pub.Publish("orders", msg))
		}
		return sent
	}
	sub := newTestSubscriber(t, ds.SubscriberConfig{
		BaseURL: base, ConsumerGroup: "g",
		SessionTimeout: 3 * time.Second, HeartbeatInterval: time.Second,
	})
	ch, err := sub.Subscribe(t.Context(), "orders")
	require.NoError(t, err)
	for range publish(newPub(), 5) {
		receive(t, ch).Ack()
	}

	require.NoError(t, srv.Restart(true)) // in memory: back empty
	restarted := time.Now()
	sent := publish(newPub(), 20)
	deadline := time.After(60 * time.Second)
	for len(sent) > 0 {
		select {
		case msg := <-ch:
			delete(sent, msg.UUID)
			msg.Ack()
		case <-deadline:
			t.Fatalf("%d of 20 messages on the recreated stream not delivered within 60s of the restart", len(sent))
		}
	}
	t.Logf("all 20 messages of the recreated stream delivered %v after the restart", time.Since(restarted).Round(time.Millisecond))
}
