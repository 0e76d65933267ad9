package durablestreams

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/durablestreams/watermill-durablestreams/internal/jsonscan"
	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
	"github.com/durablestreams/watermill-durablestreams/internal/reader"
)

// DefaultRotateEvery is how many positions a StreamOffsetStore log takes
// before the store starts a new one.
const DefaultRotateEvery = 1000

// StreamOffsetStoreConfig configures a StreamOffsetStore.
type StreamOffsetStoreConfig struct {
	// BaseURL is where the position streams live, usually the
	// Subscriber's BaseURL: positions go under BaseURL/__offsets/.
	BaseURL string
	// RotateEvery bounds a log: after that many positions the store moves
	// on to a new log, so that Load reads at most about this many records
	// plus one pointer per rotation. Default: DefaultRotateEvery.
	RotateEvery int

	// ClientConfig holds the HTTP client, headers, request timeout and
	// retry policy of the store's requests.
	ClientConfig
}

func (c *StreamOffsetStoreConfig) setDefaults() {
	if c.RotateEvery == 0 {
		c.RotateEvery = DefaultRotateEvery
	}
	c.ClientConfig.setDefaults()
}

// Validate reports the first problem with the config.
func (c StreamOffsetStoreConfig) Validate() error {
	if err := validateBaseURL(c.BaseURL, nil); err != nil {
		return err
	}
	if c.RotateEvery < 0 {
		return invalidConfig("RotateEvery is negative (%d)", c.RotateEvery)
	}
	return c.ClientConfig.validate()
}

// StreamOffsetStore keeps positions on the Durable Streams server itself,
// so it needs no other infrastructure. Per group and topic it writes JSON
// streams under BaseURL/__offsets/<group>/<topic>: that stream holds
// pointers to the current log, and each log (…/<topic>/<n>) takes one
// record per Store. Store appends and returns once the server has
// acknowledged the append; Load reads the pointers and the current log and
// takes the last record.
//
// After a crash of the subscriber, the stored position is that of the
// last message whose Store returned: a message acked but not yet stored
// comes again (at-least-once); no message is skipped, since a position is
// stored only after its message was acked. A rotation writes the position
// into the new log before it points to it, so a crash mid-rotation loses
// nothing either.
//
// Close it when done: it drops the idle connections of its own HTTP
// client.
type StreamOffsetStore struct {
	base   string
	rotate int
	client *protocol.Client
	retry  protocol.RetryPolicy
	// ownHTTP: the HTTP client is ours, so Close drops its idle connections.
	ownHTTP bool

	mu   sync.Mutex
	logs map[[2]string]*positionLog
}

// positionLog is what the store knows about one group's log in one topic.
type positionLog struct {
	mu      sync.Mutex
	loaded  bool
	gen     int
	records int
}

// NewStreamOffsetStore returns a store on the server at config.BaseURL.
func NewStreamOffsetStore(config StreamOffsetStoreConfig) (*StreamOffsetStore, error) {
	config.setDefaults()
	if err := config.Validate(); err != nil {
		return nil, err
	}
	client, ownHTTP := config.ClientConfig.newClient(true)
	return &StreamOffsetStore{
		base:    strings.TrimRight(config.BaseURL, "/") + "/__offsets",
		rotate:  config.RotateEvery,
		client:  client,
		retry:   client.Retry,
		ownHTTP: ownHTTP,
		logs:    make(map[[2]string]*positionLog),
	}, nil
}

// Close drops the idle connections of the store's own HTTP client (one
// given in the config is left alone). A request after Close opens a new
// connection; Close is safe to call more than once.
func (s *StreamOffsetStore) Close() error {
	if s.ownHTTP {
		s.client.HTTP.CloseIdleConnections()
	}
	return nil
}

func (s *StreamOffsetStore) rootURL(group, topic string) (string, error) {
	if reason := topicProblem(group); group == "" || reason != "" {
		return "", invalidConfig("consumer group %q cannot name a stream: %s", group, reason)
	}
	return topicURL(s.base+"/"+url.PathEscape(group), nil, topic)
}

func (s *StreamOffsetStore) log(group, topic string) *positionLog {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := [2]string{group, topic}
	l, ok := s.logs[key]
	if !ok {
		l = &positionLog{}
		s.logs[key] = l
	}
	return l
}

type logPointer struct {
	Gen int `json:"gen"`
}

// Load implements OffsetStore.
func (s *StreamOffsetStore) Load(ctx context.Context, group, topic string) (Position, bool, error) {
	root, err := s.rootURL(group, topic)
	if err != nil {
		return Position{}, false, err
	}
	l := s.log(group, topic)
	l.mu.Lock()
	defer l.mu.Unlock()
	return s.load(ctx, root, l)
}

func (s *StreamOffsetStore) load(ctx context.Context, root string, l *positionLog) (Position, bool, error) {
	var ptr logPointer
	if _, _, err := s.readLast(ctx, root, &ptr); err != nil {
		return Position{}, false, err
	}
	var pos Position
	ok, n, err := s.readLast(ctx, logURL(root, ptr.Gen), &pos)
	if err != nil {
		return Position{}, false, err
	}
	l.loaded, l.gen, l.records = true, ptr.Gen, n
	return pos, ok, nil
}

func logURL(root string, gen int) string { return root + "/" + strconv.Itoa(gen) }

// readLast decodes the last record of a JSON stream into v; a missing
// stream has none. It returns how many records there are.
func (s *StreamOffsetStore) readLast(ctx context.Context, streamURL string, v any) (bool, int, error) {
	r, err := reader.New(reader.Config{URL: streamURL, Client: s.client, RetryPolicy: s.retry, StopAtTail: true})
	if err != nil {
		return false, 0, err
	}
	var last json.RawMessage
	n := 0
	for {
		chunk, err := r.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if errors.Is(err, ErrStreamNotFound) {
			return false, 0, nil
		}
		if err != nil {
			return false, 0, fmt.Errorf("durablestreams: load position from %s: %w", protocol.RedactURL(streamURL), err)
		}
		elems, err := jsonscan.SplitArray(chunk.Data)
		if err != nil {
			return false, 0, fmt.Errorf("durablestreams: load position from %s: %w: JSON-mode body: %w", protocol.RedactURL(streamURL), reader.ErrProtocol, err)
		}
		if len(elems) > 0 {
			last = elems[len(elems)-1]
			n += len(elems)
		}
		if chunk.Closed {
			break
		}
	}
	if last == nil {
		return false, 0, nil
	}
	if err := json.Unmarshal(last, v); err != nil {
		return false, 0, fmt.Errorf("durablestreams: position record in %s: %w", protocol.RedactURL(streamURL), err)
	}
	return true, n, nil
}

// Store implements OffsetStore.
func (s *StreamOffsetStore) Store(ctx context.Context, group, topic string, pos Position) error {
	root, err := s.rootURL(group, topic)
	if err != nil {
		return err
	}
	l := s.log(group, topic)
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.loaded {
		if _, _, err := s.load(ctx, root, l); err != nil {
			return err
		}
	}
	if l.records >= s.rotate {
		next := l.gen + 1
		if err := s.appendJSON(ctx, logURL(root, next), pos); err != nil {
			return err
		}
		if err := s.appendJSON(ctx, root, logPointer{Gen: next}); err != nil {
			return err
		}
		s.deleteLog(ctx, logURL(root, l.gen))
		l.gen, l.records = next, 1
		return nil
	}
	if err := s.appendJSON(ctx, logURL(root, l.gen), pos); err != nil {
		return err
	}
	l.records++
	return nil
}

// appendJSON appends one record, creating the stream if it is missing.
// Retries may append a record twice; a repeated position is harmless.
func (s *StreamOffsetStore) appendJSON(ctx context.Context, streamURL string, v any) error {
	body, err := json.Marshal([]any{v})
	if err != nil {
		return err
	}
	created := false
	return s.withRetry(ctx, func(ctx context.Context) (bool, error) {
		status, err := s.post(ctx, streamURL, body)
		if err != nil {
			return true, err
		}
		if status == http.StatusNotFound && !created {
			created = true
			if err := s.client.CreateStream(ctx, streamURL, protocol.StreamOptions{ContentType: protocol.ContentTypeJSON}); err != nil {
				return true, err
			}
			status, err = s.post(ctx, streamURL, body)
			if err != nil {
				return true, err
			}
		}
		if status >= 200 && status < 300 {
			return false, nil
		}
		err = &HTTPError{Method: http.MethodPost, URL: protocol.RedactURL(streamURL), StatusCode: status}
		return protocol.RetryableStatus(status), err
	})
}

func (s *StreamOffsetStore) post(ctx context.Context, streamURL string, body []byte) (int, error) {
	ctx, cancel := s.client.WithTimeout(ctx)
	defer cancel()
	req, err := s.client.NewRequest(ctx, http.MethodPost, streamURL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", protocol.ContentTypeJSON)
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("durablestreams: store position in %s: %w", protocol.RedactURL(streamURL), err)
	}
	protocol.DrainClose(resp.Body)
	return resp.StatusCode, nil
}

// deleteLog drops a log that no pointer names any more; failing is
// harmless (it only costs space).
func (s *StreamOffsetStore) deleteLog(ctx context.Context, streamURL string) {
	ctx, cancel := s.client.WithTimeout(ctx)
	defer cancel()
	req, err := s.client.NewRequest(ctx, http.MethodDelete, streamURL, nil)
	if err != nil {
		return
	}
	if resp, err := s.client.Do(req); err == nil {
		protocol.DrainClose(resp.Body)
	}
}

// withRetry runs try until it succeeds, fails for good, or the policy
// runs out.
func (s *StreamOffsetStore) withRetry(ctx context.Context, try func(context.Context) (retry bool, err error)) error {
	start := time.Now()
	for attempt := 1; ; attempt++ {
		retry, err := try(ctx)
		if err == nil || !retry {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		wait := s.retry.Backoff(attempt)
		if !s.retry.Allows(attempt, start, wait) {
			return fmt.Errorf("%w: %w", ErrRetriesExhausted, err)
		}
		if err := protocol.Sleep(ctx, wait); err != nil {
			return err
		}
	}
}
