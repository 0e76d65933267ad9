package producer

import (
	"context"
	"encoding/json"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
	"github.com/durablestreams/watermill-durablestreams/internal/faultproxy"
	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

func TestExactlyOnceFromManyGoroutines(t *testing.T) {
	url := dstest.StreamURL(t)
	createStream(t, url, protocol.ContentTypeJSON)
	cfg, rec := testConfig(t, url)
	cfg.MaxBatchBytes = 16 << 10 // many batches
	p := start(t, cfg)

	ok, failed := appendAll(t, p, 50, 200)
	require.Empty(t, failed)
	require.NoError(t, p.Flush(t.Context()))
	requireExactlyOnce(t, url, full(50, 200))
	rec.check(t)
	require.LessOrEqual(t, rec.maxBody.Load(), int64(cfg.MaxBatchBytes))
	require.Len(t, ok, 50)
}

func TestLoneMessageGoesAtOnce(t *testing.T) {
	url := dstest.StreamURL(t)
	createStream(t, url, protocol.ContentTypeJSON)
	cfg, _ := testConfig(t, url)
	cfg.Linger = time.Hour // a lingering lone message would never arrive
	p := start(t, cfg)
	done := make(chan error, 1)
	require.NoError(t, p.Append(t.Context(), []byte(`[1,2]`), func(_ string, err error) { done <- err }))
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("a lone message waited for the linger")
	}
	// An array message stays one message.
	require.Equal(t, []string{`[1,2]`}, rawStrings(readJSON(t, url)))
}

func TestByteModeConcatenates(t *testing.T) {
	url := dstest.StreamURL(t)
	createStream(t, url, "text/plain")
	cfg, rec := testConfig(t, url)
	cfg.ContentType = "text/plain"
	p := start(t, cfg)
	for _, m := range []string{"a\n", "bc\n", "[not json\n"} {
		require.NoError(t, p.Append(t.Context(), []byte(m), nil))
	}
	require.NoError(t, p.Flush(t.Context()))
	resp, err := http.Get(url + "?offset=-1")
	require.NoError(t, err)
	defer resp.Body.Close()
	body := make([]byte, 100)
	n, _ := resp.Body.Read(body)
	require.Equal(t, "a\nbc\n[not json\n", string(body[:n]))
	rec.check(t)
}

func TestInvalidJSONFailsAlone(t *testing.T) {
	url := dstest.StreamURL(t)
	createStream(t, url, protocol.ContentTypeJSON)
	cfg, _ := testConfig(t, url)
	p := start(t, cfg)
	require.NoError(t, p.Append(t.Context(), payload(0, 0), nil))
	require.ErrorIs(t, p.Append(t.Context(), []byte(`{"g":0,`), nil), ErrInvalidJSON)
	require.ErrorIs(t, p.Append(t.Context(), nil, nil), ErrEmptyMessage)
	require.NoError(t, p.Append(t.Context(), payload(0, 1), nil))
	require.NoError(t, p.Flush(t.Context()))
	requireExactlyOnce(t, url, full(1, 2))
}

func TestMessageTooLarge(t *testing.T) {
	url := dstest.StreamURL(t)
	createStream(t, url, protocol.ContentTypeJSON)
	cfg, rec := testConfig(t, url)
	cfg.MaxBatchBytes = 100
	p := start(t, cfg)
	fits := []byte(`"` + strings.Repeat("x", 96) + `"`) // 98 bytes: with "[" and "]" exactly 100
	require.NoError(t, p.Validate(fits))
	tooBig := []byte(`"` + strings.Repeat("x", 97) + `"`)
	require.ErrorIs(t, p.Append(t.Context(), tooBig, nil), ErrMessageTooLarge)
	require.NoError(t, p.Append(t.Context(), fits, nil))
	require.NoError(t, p.Flush(t.Context()))
	require.Equal(t, int64(100), rec.maxBody.Load())
	require.Len(t, readJSON(t, url), 1)
}

func TestNoRequestOverMaxBatchBytes(t *testing.T) {
	url := dstest.StreamURL(t)
	createStream(t, url, protocol.ContentTypeJSON)
	cfg, rec := testConfig(t, url)
	cfg.MaxBatchBytes = 1000
	cfg.MaxInFlight = 1 // every slot busy: batches must still not grow past the cap
	p := start(t, cfg)
	_, failed := appendAll(t, p, 8, 300)
	require.Empty(t, failed)
	require.LessOrEqual(t, rec.maxBody.Load(), int64(1000))
	require.Greater(t, rec.maxBody.Load(), int64(900), "batches should fill up under load")
	requireExactlyOnce(t, url, full(8, 300))
	rec.check(t)
}

func TestInjectedFaultsAreRetriedExactlyOnce(t *testing.T) {
	cases := []struct {
		name  string
		fault dstest.Fault
		setup func(*Config)
		took  time.Duration
	}{
		{name: "503", fault: dstest.Fault{Status: 503, Count: 4}},
		{name: "429 with Retry-After", fault: dstest.Fault{Status: 429, Count: 1, RetryAfter: 1}, took: time.Second},
		{name: "delay beyond request timeout", fault: dstest.Fault{DelayMs: 400, Count: 2},
			setup: func(c *Config) { c.Client.RequestTimeout = 150 * time.Millisecond }},
		{name: "dropped connection", fault: dstest.Fault{DropConnection: true, Count: 4}},
		{name: "dropped connection, sometimes", fault: dstest.Fault{DropConnection: true, Count: 30, Probability: 0.3}},
	}
	srv := dstest.Faults(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			url := srv.StreamURL(dstest.StreamPath(t))
			createStream(t, url, protocol.ContentTypeJSON)
			cfg, rec := testConfig(t, url)
			cfg.MaxBatchBytes = 2 << 10
			cfg.MaxInFlight = 4
			if tc.setup != nil {
				tc.setup(&cfg)
			}
			p := start(t, cfg)
			require.NoError(t, p.Append(t.Context(), payload(99, 0), nil)) // out of probing
			require.NoError(t, p.Flush(t.Context()))

			f := tc.fault
			f.Path, f.Method = url, http.MethodPost
			require.NoError(t, srv.InjectFault(t.Context(), f))
			began := time.Now()
			_, failed := appendAll(t, p, 4, 150)
			require.Empty(t, failed)
			require.GreaterOrEqual(t, time.Since(began), tc.took, "Retry-After not honoured")
			want := full(4, 150)
			want[99] = []int{0}
			requireExactlyOnce(t, url, want)
			rec.check(t)
			require.NoError(t, srv.ClearFaults(t.Context()))
		})
	}
}

func TestLostResponsesAfterApply(t *testing.T) {
	url := dstest.StreamURL(t)
	createStream(t, url, protocol.ContentTypeJSON)
	proxy, err := faultproxy.New(url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = proxy.Close() })
	cfg, rec := testConfig(t, proxy.URL(url))
	cfg.MaxBatchBytes = 2 << 10
	cfg.MaxInFlight = 4
	p := start(t, cfg)

	proxy.LoseResponses(5)
	_, failed := appendAll(t, p, 4, 200)
	require.Empty(t, failed)
	require.Equal(t, 5, proxy.Lost())
	requireExactlyOnce(t, url, full(4, 200))
	rec.check(t)
}

func TestClosedStreamAnswersOnce(t *testing.T) {
	url := dstest.StreamURL(t)
	createStream(t, url, protocol.ContentTypeJSON)
	resp := rawPost(t, url, "", 0, 0, "", protocol.HeaderClosed, "true")
	require.Equal(t, http.StatusNoContent, resp.StatusCode)

	cfg, rec := testConfig(t, url)
	p := start(t, cfg)
	done := make(chan error, 1)
	require.NoError(t, p.Append(t.Context(), payload(0, 0), func(_ string, err error) { done <- err }))
	require.ErrorIs(t, <-done, protocol.ErrStreamClosed)
	require.ErrorIs(t, p.Append(t.Context(), payload(0, 1), nil), protocol.ErrStreamClosed)
	require.NoError(t, p.Flush(t.Context()), "nothing was pending")
	require.Equal(t, int64(1), rec.requests.Load(), "a closed stream must not be asked again")
}

func TestFlushReturnsErrors(t *testing.T) {
	url := dstest.StreamURL(t)
	createStream(t, url, protocol.ContentTypeJSON)
	cfg, _ := testConfig(t, url)
	cfg.MaxInFlight = 1
	var onError []error
	cfg.OnError = func(err error) { onError = append(onError, err) } // owner goroutine only
	p := start(t, cfg)
	require.NoError(t, p.Append(t.Context(), payload(0, 0), nil))
	require.NoError(t, p.Flush(t.Context()))
	rawPost(t, url, "", 0, 0, "", protocol.HeaderClosed, "true")
	for i := range 3 {
		err := p.Append(t.Context(), payload(0, i+1), nil)
		if err != nil {
			require.ErrorIs(t, err, protocol.ErrStreamClosed)
		}
	}
	// The first failure may come before Flush, which then has nothing
	// pending; OnError sees it either way.
	if err := p.Flush(t.Context()); err != nil {
		require.ErrorIs(t, err, protocol.ErrStreamClosed)
	}
	require.NoError(t, p.Close(t.Context()))
	require.NotEmpty(t, onError)
	require.ErrorIs(t, onError[0], protocol.ErrStreamClosed)
}

func TestBadRequestDoesNotCascade(t *testing.T) {
	srv := dstest.Faults(t)
	url := srv.StreamURL(dstest.StreamPath(t))
	createStream(t, url, protocol.ContentTypeJSON)
	cfg, rec := testConfig(t, url)
	cfg.MaxInFlight = 4
	cfg.MaxBatchBytes = 200
	p := start(t, cfg)
	require.NoError(t, p.Append(t.Context(), payload(9, 0), nil))
	require.NoError(t, p.Flush(t.Context()))

	// Hold four batches in flight, then let the first of them get a 400.
	arrived, release := rec.hold(4)
	require.NoError(t, srv.InjectFault(t.Context(), dstest.Fault{Path: url, Method: http.MethodPost, Status: 400}))
	results := make(chan error, 40)
	for i := range 40 {
		require.NoError(t, p.Append(t.Context(), payload(0, i), func(_ string, err error) { results <- err }))
	}
	for range 4 {
		<-arrived
	}
	release()
	var failures int
	for range 40 {
		if err := <-results; err != nil {
			require.ErrorContains(t, err, ": 400", "the answer's error, naming its status")
			failures++
		}
	}
	require.NotZero(t, failures)
	require.Less(t, failures, 40/2, "only the one batch fails")
	require.NoError(t, p.Append(t.Context(), payload(1, 0), nil))
	require.NoError(t, p.Flush(t.Context()), "later batches go on")

	got := map[int][]int{}
	for _, raw := range readJSON(t, url) {
		var m msg
		require.NoError(t, json.Unmarshal(raw, &m))
		got[m.G] = append(got[m.G], m.I)
	}
	require.Len(t, got[0], 40-failures)
	require.IsIncreasing(t, got[0])
	require.Equal(t, []int{0}, got[1])
}

func TestAutoClaimWithBatchesInFlight(t *testing.T) {
	url := dstest.StreamURL(t)
	createStream(t, url, protocol.ContentTypeJSON)
	cfg, rec := testConfig(t, url)
	cfg.AutoClaim = true
	cfg.MaxInFlight = 4
	cfg.MaxBatchBytes = 200
	p := start(t, cfg)
	require.NoError(t, p.Append(t.Context(), payload(0, 0), nil))
	require.NoError(t, p.Flush(t.Context()))

	resp := rawPost(t, url, cfg.ProducerID, 5, 0, `{"g":1,"i":0}`)
	require.Equal(t, http.StatusOK, resp.StatusCode)

	arrived, release := rec.hold(4)
	results := make(chan error, 60)
	for i := 1; i <= 60; i++ {
		require.NoError(t, p.Append(t.Context(), payload(0, i), func(_ string, err error) { results <- err }))
	}
	for range 4 {
		<-arrived // four batches in flight at the fenced epoch
	}
	release()
	for range 60 {
		require.NoError(t, <-results)
	}
	require.Equal(t, int64(6), p.Epoch())
	want := map[int][]int{0: seq(61), 1: {0}}
	requireExactlyOnce(t, url, want)
	rec.check(t)
}

func TestFencedWithoutAutoClaim(t *testing.T) {
	url := dstest.StreamURL(t)
	createStream(t, url, protocol.ContentTypeJSON)
	cfg, _ := testConfig(t, url)
	resp := rawPost(t, url, cfg.ProducerID, 5, 0, `{"g":1,"i":0}`)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	p := start(t, cfg)
	done := make(chan error, 1)
	require.NoError(t, p.Append(t.Context(), payload(0, 0), func(_ string, err error) { done <- err }))
	err := <-done
	require.ErrorIs(t, err, protocol.ErrStaleEpoch)
	// The client has no constructor of the root's StaleEpochError: its
	// plain error names both epochs.
	require.ErrorContains(t, err, "producer epoch 0, server has epoch 5")
	require.ErrorIs(t, p.Append(t.Context(), payload(0, 1), nil), protocol.ErrStaleEpoch)
}

func TestRestartWithSameEpochLosesNothing(t *testing.T) {
	url := dstest.StreamURL(t)
	createStream(t, url, protocol.ContentTypeJSON)
	cfg, _ := testConfig(t, url)
	first := start(t, cfg)
	_, failed := appendAll(t, first, 1, 20)
	require.Empty(t, failed)
	require.NoError(t, first.Close(t.Context()))

	// Same id and epoch: seq 0 of the new producer is a duplicate on the
	// server; official clients drop such messages silently.
	second := start(t, cfg)
	for i := range 5 {
		require.NoError(t, second.Append(t.Context(), payload(1, i), nil))
	}
	require.NoError(t, second.Flush(t.Context()))
	requireExactlyOnce(t, url, map[int][]int{0: seq(20), 1: seq(5)})
}

func TestBackPressure(t *testing.T) {
	url := dstest.StreamURL(t)
	createStream(t, url, protocol.ContentTypeJSON)
	cfg, rec := testConfig(t, url)
	cfg.MaxBatchBytes = 100
	cfg.MaxBufferedBytes = 100
	p := start(t, cfg)
	arrived, release := rec.hold(1)
	defer release()
	m := payload(0, 0) // 13 bytes
	var n int
	for ; (n+1)*len(m) <= 100; n++ {
		require.NoError(t, p.Append(t.Context(), m, nil))
	}
	<-arrived

	short, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	err := p.Append(short, m, nil)
	require.ErrorIs(t, err, context.DeadlineExceeded, "Append must wait for buffer space")

	appended := make(chan error, 1)
	go func() { appended <- p.Append(t.Context(), m, nil) }()
	release()
	require.NoError(t, <-appended, "Append resumes when space is freed")
	require.NoError(t, p.Flush(t.Context()))
	require.Len(t, readJSON(t, url), n+1)
}

func TestCloseStream(t *testing.T) {
	url := dstest.StreamURL(t)
	createStream(t, url, protocol.ContentTypeJSON)
	cfg, _ := testConfig(t, url)
	p := start(t, cfg)
	require.NoError(t, p.Append(t.Context(), payload(0, 0), nil))
	offset, err := p.CloseStream(t.Context(), payload(0, 1))
	require.NoError(t, err)
	require.NotEmpty(t, offset)
	require.ErrorIs(t, p.Append(t.Context(), payload(0, 2), nil), protocol.ErrStreamClosed)
	requireExactlyOnce(t, url, full(1, 2))
	resp, err := http.Head(url)
	require.NoError(t, err)
	require.Equal(t, "true", resp.Header.Get(protocol.HeaderClosed))
	require.Equal(t, offset, resp.Header.Get(protocol.HeaderNextOffset))
}

func TestCloseStreamWithoutFinalMessage(t *testing.T) {
	url := dstest.StreamURL(t)
	createStream(t, url, protocol.ContentTypeJSON)
	cfg, _ := testConfig(t, url)
	p := start(t, cfg)
	require.NoError(t, p.Append(t.Context(), payload(0, 0), nil))
	offset, err := p.CloseStream(t.Context(), nil)
	require.NoError(t, err)
	require.NotEmpty(t, offset)
	requireExactlyOnce(t, url, full(1, 1))
}

func TestCloseJoinsGoroutines(t *testing.T) {
	srv := dstest.Faults(t)
	url := srv.StreamURL(dstest.StreamPath(t))
	createStream(t, url, protocol.ContentTypeJSON)
	before := runtime.NumGoroutine()
	cfg, rec := testConfig(t, url)
	cfg.Client.RequestTimeout = time.Minute
	p, err := New(cfg)
	require.NoError(t, err)
	_, failed := appendAll(t, p, 4, 50)
	require.Empty(t, failed)

	// A request that hangs past Close's deadline was written: its message
	// may be on the stream, so it is ErrOutcomeUnknown, not ErrProducerClosed
	// (a caller retrying on that could write it twice).
	require.NoError(t, srv.InjectFault(t.Context(), dstest.Fault{Path: url, Method: http.MethodPost, DelayMs: 3000}))
	done := make(chan error, 1)
	require.NoError(t, p.Append(t.Context(), payload(1, 0), func(_ string, err error) { done <- err }))
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	err = p.Close(ctx)
	msgErr := <-done
	require.ErrorIs(t, msgErr, protocol.ErrOutcomeUnknown)
	require.NotErrorIs(t, msgErr, ErrProducerClosed)
	require.ErrorIs(t, err, protocol.ErrOutcomeUnknown, "Close gave up on a message that may have been written")
	require.NotErrorIs(t, err, ErrProducerClosed)
	require.Equal(t, err, p.Close(t.Context()), "Close is idempotent")
	require.ErrorIs(t, p.Append(t.Context(), payload(1, 1), nil), ErrProducerClosed)
	rec.next.(*http.Transport).CloseIdleConnections()
	dstest.RequireGoroutinesBackTo(t, before)
}

func TestConfigValidate(t *testing.T) {
	var c Config
	c.setDefaults()
	err := c.Validate()
	require.ErrorIs(t, err, protocol.ErrInvalidConfig)
	require.ErrorContains(t, err, "URL is empty")
	c = Config{URL: "http://x", ContentType: "application/json", ProducerID: "p", Epoch: protocol.MaxInteger + 1}
	c.setDefaults()
	err = c.Validate()
	require.ErrorContains(t, err, "Epoch")
	require.ErrorContains(t, err, "Producer-Epoch")
	c.Epoch, c.MaxInFlight = 0, -1
	require.ErrorContains(t, c.Validate(), "MaxInFlight")
	_, err = New(c)
	require.Error(t, err)
	c = Config{URL: "http://x", ContentType: "application/json", ProducerID: "p"}
	c.setDefaults()
	require.NoError(t, c.Validate())
	tr := c.Client.HTTP.Transport.(*http.Transport)
	require.Less(t, tr.IdleConnTimeout, 5*time.Second)
	require.GreaterOrEqual(t, tr.MaxIdleConnsPerHost, c.MaxInFlight)
	require.Equal(t, DefaultRequestTimeout, c.Client.RequestTimeout)
}

func rawStrings(msgs []json.RawMessage) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = string(m)
	}
	return out
}
