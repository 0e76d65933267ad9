package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// The raw rows are the ceiling: a plain net/http client with keep-alive
// and no library in between, sending the bytes the library would send.

const maxRawBody = 1 << 20 // the Publisher's default MaxBatchBytes

func rawClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		MaxConnsPerHost:     conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     4 * time.Second,
		DisableCompression:  true,
	}}
}

// send does one request and fails on anything but a 2xx answer.
func send(ctx context.Context, c *http.Client, method, url, contentType string, body []byte) (http.Header, error) {
	return sendWith(ctx, c, method, url, contentType, body, nil)
}

func sendWith(ctx context.Context, c *http.Client, method, url, contentType string, body []byte, header http.Header) (http.Header, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s %s: HTTP %d", method, url, resp.StatusCode)
	}
	return resp.Header, err
}

func createStream(ctx context.Context, c *http.Client, url string, m mode) error {
	_, err := send(ctx, c, http.MethodPut, url, m.contentType(), nil)
	return err
}

// parallel runs fn(0..n-1) on workers goroutines and returns the first error.
func parallel(ctx context.Context, workers, n int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(ctx, i); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// postAll creates a stream and POSTs bodies to it on conns connections,
// timed; it returns the stream URL and how long the POSTs took.
func postAll(ctx context.Context, r *runCtx, name string, m mode, bodies [][]byte, conns int, lineIDs ...string) (string, time.Duration, error) {
	c := rawClient(conns)
	defer c.CloseIdleConnections()
	_, url := r.b.newStream(name)
	if err := createStream(ctx, c, url, m); err != nil {
		return "", 0, err
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	elapsed, err := r.timed(func() error {
		return parallel(ctx, conns, len(bodies), func(ctx context.Context, i int) error {
			_, err := send(ctx, c, http.MethodPost, url, m.contentType(), bodies[i])
			return err
		})
	}, lineIDs...)
	return url, elapsed, err
}

// rawSingleRun: one message per POST (the message itself, which the
// server stores as one message) on conns keep-alive connections.
func rawSingleRun(ctx context.Context, r *runCtx, lineID string, n, conns int) (float64, error) {
	c, err := r.b.corpusOf(jsonMode, n)
	if err != nil {
		return 0, err
	}
	url, elapsed, err := postAll(ctx, r, lineID, jsonMode, c.encoded, conns, lineID)
	if err != nil {
		return 0, err
	}
	defer r.b.deleteStream(url)
	return rate(n, elapsed), r.b.verify(ctx, url, c)
}

// rawBatchedRun: perBody messages per POST on conns connections.
func rawBatchedRun(ctx context.Context, r *runCtx, lineID string, m mode, n, conns, perBody int) (float64, error) {
	c, err := r.b.corpusOf(m, n)
	if err != nil {
		return 0, err
	}
	url, elapsed, err := postAll(ctx, r, lineID, m, c.batches(perBody, maxRawBody), conns, lineID)
	if err != nil {
		return 0, err
	}
	defer r.b.deleteStream(url)
	return rate(n, elapsed), r.b.verify(ctx, url, c)
}

// rawLatencies POSTs n single messages one after the other on one
// connection and returns each round trip. With asProducer each request
// is what the library's producer sends: the message wrapped in a JSON
// array, with Producer-Id, -Epoch and -Seq headers (the server then also
// checks and updates the producer's state).
func rawLatencies(ctx context.Context, b *bench, n int, asProducer bool) ([]time.Duration, error) {
	const warm = 50
	c, err := b.corpusOf(jsonMode, n+warm)
	if err != nil {
		return nil, err
	}
	hc := rawClient(1)
	defer hc.CloseIdleConnections()
	_, url := b.newStream("latency-raw")
	if err := createStream(ctx, hc, url, jsonMode); err != nil {
		return nil, err
	}
	defer b.deleteStream(url)
	lat := make([]time.Duration, 0, n)
	header := http.Header{}
	producerID := "bench-raw-" + uuid.NewString()
	for i, enc := range c.encoded {
		body := enc
		if asProducer {
			body = make([]byte, 0, len(enc)+2)
			body = append(append(append(body, '['), enc...), ']')
			header.Set("Producer-Id", producerID)
			header.Set("Producer-Epoch", "0")
			header.Set("Producer-Seq", strconv.Itoa(i))
		}
		start := time.Now()
		if _, err := sendWith(ctx, hc, http.MethodPost, url, jsonMode.contentType(), body, header); err != nil {
			return nil, err
		}
		if i >= warm {
			lat = append(lat, time.Since(start))
		}
	}
	return lat, nil
}

// catchUp reads a stream from the start to its tail with plain GETs,
// following Stream-Next-Offset, and returns the bytes read.
func catchUp(ctx context.Context, c *http.Client, url string, each func(body []byte) error) (int64, error) {
	offset := "-1"
	var total int64
	for {
		body, header, err := get(ctx, c, url+"?offset="+offset)
		if err != nil {
			return total, err
		}
		total += int64(len(body))
		if each != nil {
			if err := each(body); err != nil {
				return total, err
			}
		}
		next := header.Get("Stream-Next-Offset")
		if next == "" {
			return total, fmt.Errorf("GET %s: no Stream-Next-Offset", url)
		}
		if up, _ := strconv.ParseBool(header.Get("Stream-Up-To-Date")); up || next == offset {
			return total, nil
		}
		offset = next
	}
}

func get(ctx context.Context, c *http.Client, url string) ([]byte, http.Header, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("GET %s: HTTP %d", url, resp.StatusCode)
	}
	return body, resp.Header, nil
}

func rate(n int, d time.Duration) float64 { return float64(n) / d.Seconds() }
