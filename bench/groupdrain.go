package main

import (
	"context"
	"net/http"
	"os"
	"strings"
	"sync/atomic"

	"github.com/google/uuid"

	durablestreams "github.com/durablestreams/watermill-durablestreams"
	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

// The group-drain rows measure what a consumer group costs a drain: the
// same backlog drained through the same Router with and without
// Checkpoint + StreamOffsetStore, on the in-memory server and on a
// file-backed one. They use only the Subscriber's basic fields and its
// defaults (CommitInterval included), so that they keep measuring what a
// user gets when those defaults change; position writes per 1,000
// messages say what the defaults did.

// positionCounter is an http.RoundTripper that counts the POSTs to the
// offset store's streams (BaseURL/__offsets/...), i.e. position writes.
type positionCounter struct {
	base  http.RoundTripper
	posts atomic.Int64
}

func (c *positionCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPost && strings.Contains(req.URL.Path, "/__offsets/") {
		c.posts.Add(1)
	}
	return c.base.RoundTrip(req)
}

func (c *positionCounter) CloseIdleConnections() {
	if ci, ok := c.base.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

// fileServer returns the bench's file-backed server, started on first use
// in a temporary directory that Stop of the bench removes.
func (b *bench) fileServer() (*dstest.Server, error) {
	if b.fileSrv != nil {
		return b.fileSrv, nil
	}
	dir, err := os.MkdirTemp("", "bench-file-server-")
	if err != nil {
		return nil, err
	}
	srv, err := dstest.Start(dstest.Options{DataDir: dir})
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	b.fileSrv, b.fileDir = srv, dir
	return srv, nil
}

// stopFileServer stops the file-backed server, if one was started, and
// removes its data.
func (b *bench) stopFileServer() {
	if b.fileSrv == nil {
		return
	}
	b.fileSrv.Stop()
	_ = os.RemoveAll(b.fileDir)
	b.fileSrv, b.fileDir = nil, ""
}

// groupDrainPair drains one backlog of n messages on srv twice through
// the Router: without a group (id noGroup), then with a fresh group whose
// positions a StreamOffsetStore keeps on the same server (id withGroup).
// writes is position writes per 1,000 messages.
func groupDrainPair(ctx context.Context, r *runCtx, srv *dstest.Server, n int, noGroup, withGroup, writes string) (map[string]float64, error) {
	baseURL := strings.TrimRight(srv.URL, "/") + "/v1/stream"
	topic := "bench-group-" + uuid.NewString()[:8]
	url := baseURL + "/" + topic
	if _, err := writeBacklog(ctx, r, url, n); err != nil {
		return nil, err
	}
	defer r.b.deleteStream(url)

	plain, err := groupDrainRun(ctx, r, baseURL, topic, n, nil, "", nil, noGroup)
	if err != nil {
		return nil, err
	}

	counter := &positionCounter{base: http.DefaultTransport.(*http.Transport).Clone()}
	storeClient := &http.Client{Transport: counter}
	defer storeClient.CloseIdleConnections()
	store, err := durablestreams.NewStreamOffsetStore(durablestreams.StreamOffsetStoreConfig{
		BaseURL:      baseURL,
		ClientConfig: durablestreams.ClientConfig{HTTPClient: storeClient},
	})
	if err != nil {
		return nil, err
	}
	defer store.Close()
	grouped, err := groupDrainRun(ctx, r, baseURL, topic, n, nil, "bench-"+uuid.NewString()[:8], store, withGroup, writes)
	if err != nil {
		return nil, err
	}
	return map[string]float64{
		noGroup:   plain.rate,
		withGroup: grouped.rate,
		writes:    1000 * float64(counter.posts.Load()) / float64(n),
	}, nil
}

// groupDrainRunBoth is the in-memory pair, then the file-backed pair.
func groupDrainRunBoth(ctx context.Context, r *runCtx, n int) (map[string]float64, error) {
	values, err := groupDrainPair(ctx, r, r.b.srv, n, "9-mem", "9-mem-group", "9-mem-writes")
	if err != nil {
		return nil, err
	}
	fileSrv, err := r.b.fileServer()
	if err != nil {
		return nil, err
	}
	r.serverPID = fileSrv.PID()
	file, err := groupDrainPair(ctx, r, fileSrv, n, "9-file", "9-file-group", "9-file-writes")
	if err != nil {
		return nil, err
	}
	for k, v := range file {
		values[k] = v
	}
	return values, nil
}
