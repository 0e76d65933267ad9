package systemtest

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	ds "github.com/durablestreams/watermill-durablestreams"
	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

// Issue 12 item 4: Close with a deadline while a request is on the wire
// must not report the message as not written: the server writes it.
func TestCloseDeadlineReportsInFlightMessagesAsOutcomeUnknown(t *testing.T) {
	srv := dstest.Faults(t)
	base := srv.StreamURL(dstest.StreamPath(t))
	var mu sync.Mutex
	var asyncErrs []error
	cfg := ds.PublisherConfig{BaseURL: base, Async: true, CloseTimeout: 200 * time.Millisecond}
	posts := make(chan struct{}, 16)
	cfg.HTTPClient = &http.Client{Transport: signalTransport{base: http.DefaultTransport, posts: posts}}
	cfg.OnAsyncError = func(_, _ string, err error) {
		mu.Lock()
		asyncErrs = append(asyncErrs, err)
		mu.Unlock()
	}
	pub, err := ds.NewPublisher(cfg, nil)
	require.NoError(t, err)
	require.NoError(t, pub.Publish("t", message.NewMessage(watermill.NewUUID(), []byte(`0`))))
	require.NoError(t, pub.Flush(t.Context()))
	<-posts

	require.NoError(t, srv.InjectFault(t.Context(), dstest.Fault{Path: base + "/t", Method: "POST", DelayMs: 1000}))
	require.NoError(t, pub.Publish("t", message.NewMessage(watermill.NewUUID(), []byte(`1`))))
	<-posts // on the wire
	_ = pub.Close()

	mu.Lock()
	require.Len(t, asyncErrs, 1)
	got := asyncErrs[0]
	mu.Unlock()
	require.ErrorIs(t, got, ds.ErrOutcomeUnknown)
	require.NotErrorIs(t, got, ds.ErrPublisherClosed, "a caller retrying on ErrPublisherClosed would write it twice")
	// (Whether the server wrote it depends on when it noticed the hang-up:
	// that is why the outcome is unknown.)
}

// Issue 12 item 4: a Publish of several messages whose context ends while
// their request is on the wire says, per message, that it may be written.
func TestPublishContextEndsOnTheWireSaysPerMessage(t *testing.T) {
	srv := dstest.Faults(t)
	base := srv.StreamURL(dstest.StreamPath(t))
	cfg := ds.PublisherConfig{BaseURL: base}
	posts := make(chan struct{}, 16)
	cfg.HTTPClient = &http.Client{Transport: signalTransport{base: http.DefaultTransport, posts: posts}}
	pub, _ := newTestPublisher(t, cfg)
	require.NoError(t, pub.Publish("t", message.NewMessage(watermill.NewUUID(), []byte(`0`))))
	<-posts

	require.NoError(t, srv.InjectFault(t.Context(), dstest.Fault{Path: base + "/t", Method: "POST", DelayMs: 1000}))
	ctx, cancel := context.WithCancel(context.Background())
	msgs := make([]*message.Message, 8)
	for i := range msgs {
		msgs[i] = message.NewMessage(watermill.NewUUID(), []byte(`1`))
		msgs[i].SetContext(ctx)
	}
	errc := make(chan error, 1)
	go func() { errc <- pub.Publish("t", msgs...) }()
	<-posts
	cancel()
	err := <-errc
	var pubErr *ds.PublishError
	require.ErrorAs(t, err, &pubErr)
	require.Len(t, pubErr.Errs, len(msgs))
	require.Empty(t, pubErr.Acknowledged())
	for i, e := range pubErr.Errs {
		require.ErrorIs(t, e, ds.ErrOutcomeUnknown, "message %d", i)
		require.Equal(t, msgs[i].UUID, pubErr.UUIDs[i])
	}
	require.ErrorIs(t, err, ds.ErrOutcomeUnknown)
}

// Issue 12 item 4: a transport error after the request was written (a
// malformed status line from a proxy) is retried with the same epoch and
// seq, not taken for "never reached the stream".
func TestMalformedAnswerAfterWriteIsRetriedWithTheSameSeq(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	base := fakeHostileServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Producer-Epoch")+"/"+r.Header.Get("Producer-Seq"))
		first := len(seen) == 1
		mu.Unlock()
		if first {
			conn, buf, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			_, _ = buf.WriteString("HTTP/1.1 two hundred OK\r\n\r\n")
			_ = buf.Flush()
			_ = conn.Close()
			return
		}
		w.Header().Set("Stream-Next-Offset", "0_1")
		w.WriteHeader(http.StatusOK)
	})
	require.NoError(t, publishOne(hostilePublisher(t, base)))
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, seen, 2)
	require.Equal(t, seen[0], seen[1], "the retry carries the same epoch and seq")
}

// Issue 12 item 8: no message value panics; a nil one is a typed error.
func TestPublishOddMessages(t *testing.T) {
	pub, base := newTestPublisher(t, ds.PublisherConfig{})
	msg := &message.Message{UUID: "x", Payload: []byte(`{"a":1}`)} // nil Metadata
	require.NotPanics(t, func() { require.NoError(t, pub.Publish("t", msg)) })
	require.NotEmpty(t, msg.Metadata.Get(ds.MetadataOffset))

	err := pub.Publish("t", message.NewMessage(watermill.NewUUID(), []byte(`2`)), nil)
	require.ErrorIs(t, err, ds.ErrNilMessage)
	require.Len(t, readJSONStream(t, base+"/t"), 1, "nothing of a call with a nil message is written")
}

// gateTransport lets the first POST through and holds the later ones until
// the gate opens or their request ends; held tells when one is held.
type gateTransport struct {
	base  http.RoundTripper
	posts atomic.Int64
	gate  chan struct{}
	held  chan struct{}
}

func (g *gateTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPost && g.posts.Add(1) > 1 {
		select {
		case g.held <- struct{}{}:
		default:
		}
		select {
		case <-g.gate:
		case <-req.Context().Done():
			return nil, req.Context().Err()
		}
	}
	return g.base.RoundTrip(req)
}

// Issue 12 item 4: a Publish of 8 messages of which some were acknowledged
// when its context ended says which.
func TestPublishErrorSaysWhichMessagesWereAcknowledged(t *testing.T) {
	gt := &gateTransport{base: http.DefaultTransport, gate: make(chan struct{}), held: make(chan struct{}, 1)}
	cfg := ds.PublisherConfig{MaxInFlight: 1, MaxBatchBytes: 200}
	cfg.HTTPClient = &http.Client{Transport: gt}
	pub, base := newTestPublisher(t, cfg)
	t.Cleanup(func() { close(gt.gate) }) // before the Publisher's Close

	ctx, cancel := context.WithCancel(context.Background())
	msgs := make([]*message.Message, 8)
	for i := range msgs {
		msgs[i] = message.NewMessage(watermill.NewUUID(), []byte(`1`))
		msgs[i].SetContext(ctx)
	}
	errc := make(chan error, 1)
	go func() { errc <- pub.Publish("t", msgs...) }()
	<-gt.held // the first batch was acknowledged (one request at a time); the next is held
	written := len(readJSONStream(t, base+"/t"))
	require.Positive(t, written)
	require.Less(t, written, len(msgs))
	cancel()
	err := <-errc

	var pubErr *ds.PublishError
	require.ErrorAs(t, err, &pubErr)
	acked := make([]int, written)
	for i := range acked {
		acked[i] = i
	}
	require.Equal(t, acked, pubErr.Acknowledged(), "exactly the messages in the stream")
	for i := written; i < len(msgs); i++ {
		require.ErrorIs(t, pubErr.Errs[i], ds.ErrOutcomeUnknown, "message %d was handed to the producer", i)
	}
	require.Contains(t, err.Error(), fmt.Sprintf("%d of 8 message(s) not acknowledged", len(msgs)-written))
	require.Equal(t, 1, strings.Count(err.Error(), "durablestreams:"), "one prefix: %s", err)
}

// Each message's context bounds the wait, not only the first one's.
func TestPublishWaitEndsWithAnyMessagesContext(t *testing.T) {
	gt := &gateTransport{base: http.DefaultTransport, gate: make(chan struct{}), held: make(chan struct{}, 1)}
	cfg := ds.PublisherConfig{}
	cfg.HTTPClient = &http.Client{Transport: gt}
	pub, _ := newTestPublisher(t, cfg)
	t.Cleanup(func() { close(gt.gate) }) // before the Publisher's Close
	require.NoError(t, pub.Publish("t", message.NewMessage(watermill.NewUUID(), []byte(`0`))))

	ctx, cancel := context.WithCancel(context.Background())
	first := message.NewMessage(watermill.NewUUID(), []byte(`1`)) // no deadline
	second := message.NewMessage(watermill.NewUUID(), []byte(`2`))
	second.SetContext(ctx)
	errc := make(chan error, 1)
	go func() { errc <- pub.Publish("t", first, second) }()
	<-gt.held
	cancel()
	err := <-errc
	var pubErr *ds.PublishError
	require.ErrorAs(t, err, &pubErr)
	require.ErrorIs(t, pubErr.Errs[0], ds.ErrOutcomeUnknown)
	require.ErrorIs(t, pubErr.Errs[1], ds.ErrOutcomeUnknown)
}
