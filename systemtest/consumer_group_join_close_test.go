package systemtest

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	ds "github.com/durablestreams/watermill-durablestreams"
	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

// TestCloseEndsAGroupSubscribeStillJoining: Close ends a group's
// Subscribe that is still reading the topic's partitions or joining (here
// a PUT the server does not answer), with ErrSubscriberClosed, as it ends
// a plain Subscribe loading its position; it used to wait for the
// request's own timeout and retries (about 10 s against an unreachable
// server) and then give that error instead.
func TestCloseEndsAGroupSubscribeStillJoining(t *testing.T) {
	held := newHeldPuts()
	cfg := ds.SubscriberConfig{BaseURL: dstest.StreamURL(t), ConsumerGroup: "g",
		SessionTimeout: 2 * time.Second, HeartbeatInterval: 500 * time.Millisecond}
	cfg.HTTPClient = &http.Client{Transport: held}
	sub, err := ds.NewSubscriber(cfg, nil)
	require.NoError(t, err)
	subscribed := make(chan error, 1)
	go func() {
		ch, err := sub.Subscribe(context.Background(), "orders")
		if err == nil {
			for range ch {
			}
		}
		subscribed <- err
	}()
	<-held.arrived // the join is under way, waiting for the server
	closed := make(chan error, 1)
	go func() { closed <- sub.Close() }()
	select {
	case err := <-subscribed:
		require.ErrorIs(t, err, ds.ErrSubscriberClosed)
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the Subscribe that was joining")
	}
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
}
