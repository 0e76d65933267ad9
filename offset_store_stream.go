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

	"github.com/durablestreams/watermill-durablestreams/internal/defaults"
	"github.com/durablestreams/watermill-durablestreams/internal/jsonscan"
	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
	"github.com/durablestreams/watermill-durablestreams/internal/reader"
	"github.com/durablestreams/watermill-durablestreams/retry"
)

// StreamOffsetStoreConfig configures a StreamOffsetStore.
type StreamOffsetStoreConfig struct {
	// BaseURL is where the position streams live, usually the
	// Subscriber's BaseURL: positions go under BaseURL/__offsets/.
	BaseURL string
	// RotateEvery bounds a log: after that many positions the store moves
	// on to a new log, so that Load reads at most about this many records
	// plus one pointer per rotation. Default: 1000.
	RotateEvery int

	// ClientConfig holds the HTTP client, headers, request timeout and
	// retry policy of the store's requests.
	ClientConfig
}

func (c *StreamOffsetStoreConfig) setDefaults() {
	if c.RotateEvery == 0 {
		c.RotateEvery = defaults.RotateEvery
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
	retry  retry.Policy
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
	client, ownHTTP := config.ClientConfig.newClient(true, nil)
	return &StreamOffsetStore{
		base:    strings.TrimRight(config.BaseURL, "/") + "/" + offsetsRoot,
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
	pos, ok, err := s.loadPosition(ctx, group, topic)
	if err != nil {
		return Position{}, false, errorf(err, "load position of checkpoint %q in %q", group, topic)
	}
	return pos, ok, nil
}

func (s *StreamOffsetStore) loadPosition(ctx context.Context, group, topic string) (Position, bool, error) {
	root, err := s.rootURL(group, topic)
	if err != nil {
		return Position{}, false, err
	}
	l := s.log(group, topic)
	l.mu.Lock()
	defer l.mu.Unlock()
	return s.load(ctx, root, l)
}

// load reads the pointer, then the log it names. A rotation by another
// store may delete that log between the two reads: then the pointer has
// moved on, and is read again.
func (s *StreamOffsetStore) load(ctx context.Context, root string, l *positionLog) (Position, bool, error) {
	gen, err := s.pointer(ctx, root)
	if err != nil {
		return Position{}, false, err
	}
	for attempt := 0; ; attempt++ {
		var pos Position
		exists, ok, n, err := s.readLast(ctx, logURL(root, gen), &pos)
		if err != nil {
			return Position{}, false, err
		}
		if !exists && attempt < maxLoadAttempts {
			// Never written, or rotated away under us: then the pointer
			// has moved on.
			now, err := s.pointer(ctx, root)
			if err != nil {
				return Position{}, false, err
			}
			if now != gen {
				gen = now
				continue
			}
		}
		l.loaded, l.gen, l.records = true, gen, n
		return pos, ok, nil
	}
}

// pointer reads which log is current; a group without one writes log 0.
func (s *StreamOffsetStore) pointer(ctx context.Context, root string) (int, error) {
	var ptr logPointer
	_, _, _, err := s.readLast(ctx, root, &ptr)
	return ptr.Gen, err
}

// maxLoadAttempts bounds how often a load follows rotations that race it.
const maxLoadAttempts = 10

func logURL(root string, gen int) string { return root + "/" + strconv.Itoa(gen) }

// readLast decodes the last record of a JSON stream into v; a missing
// stream (exists false) has none. It returns how many records there are.
// A body cut short is read again from the start.
func (s *StreamOffsetStore) readLast(ctx context.Context, streamURL string, v any) (exists, ok bool, n int, err error) {
	var last []byte
	err = protocol.Retry(ctx, s.retry, s.client.RefusedPoll, func(int) protocol.Try {
		var err error
		exists, last, n, err = s.readRecords(ctx, streamURL)
		var cut *reader.BodyError
		return protocol.Try{Err: err, Retryable: errors.As(err, &cut)}
	})
	if err != nil {
		return false, false, 0, fmt.Errorf("read %s: %w", protocol.RedactURL(streamURL), err)
	}
	if last == nil {
		return exists, false, 0, nil
	}
	if err := json.Unmarshal(last, v); err != nil {
		return true, false, 0, fmt.Errorf("position record in %s: %w", protocol.RedactURL(streamURL), err)
	}
	return true, true, n, nil
}

// readRecords reads a JSON stream to its tail, keeping its last record.
func (s *StreamOffsetStore) readRecords(ctx context.Context, streamURL string) (exists bool, last []byte, n int, err error) {
	r, err := reader.New(reader.Config{URL: streamURL, Client: s.client, RetryPolicy: s.retry, StopAtTail: true})
	if err != nil {
		return false, nil, 0, err
	}
	defer r.Close()
	for {
		chunk, err := r.Next(ctx)
		if errors.Is(err, io.EOF) {
			return true, last, n, nil
		}
		if errors.Is(err, ErrStreamNotFound) {
			return false, nil, 0, nil
		}
		if err != nil {
			return false, nil, 0, err
		}
		elems := jsonscan.NewArrayReader(chunk.Body, maxRecordBytes)
		for {
			e, err := elems.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				var cut *reader.BodyError
				if errors.As(err, &cut) {
					return false, nil, 0, cut
				}
				return false, nil, 0, fmt.Errorf("%w: JSON-mode body: %w", reader.ErrProtocol, err)
			}
			last = append(last[:0], e...)
			n++
		}
		if chunk.Closed {
			return true, last, n, nil
		}
	}
}

// maxRecordBytes bounds one position record (a hostile server cannot make
// a load buffer more).
const maxRecordBytes = 64 << 10

// Store implements OffsetStore.
func (s *StreamOffsetStore) Store(ctx context.Context, group, topic string, pos Position) error {
	if err := s.storePosition(ctx, group, topic, pos); err != nil {
		return errorf(err, "store position of checkpoint %q in %q", group, topic)
	}
	return nil
}

func (s *StreamOffsetStore) storePosition(ctx context.Context, group, topic string, pos Position) error {
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
		if err := s.appendJSON(ctx, logURL(root, next), pos, true); err != nil {
			return err
		}
		if err := s.appendJSON(ctx, root, logPointer{Gen: next}, true); err != nil {
			return err
		}
		s.deleteLog(ctx, logURL(root, l.gen))
		l.gen, l.records = next, 1
		return nil
	}
	err = s.appendJSON(ctx, logURL(root, l.gen), pos, false)
	if errors.Is(err, errNoLog) {
		// Missing: never written, or rotated away by another store. A
		// log is created only once the pointer names it, so that no
		// position goes where Load does not look.
		if _, _, err := s.load(ctx, root, l); err != nil {
			return err
		}
		if l.records == 0 {
			// Most likely never written: create it first rather than
			// meet one more 404 (PUT confirms a log that exists).
			if err := s.client.CreateStream(ctx, logURL(root, l.gen), protocol.StreamOptions{ContentType: protocol.ContentTypeJSON}); err != nil {
				return err
			}
		}
		err = s.appendJSON(ctx, logURL(root, l.gen), pos, true)
	}
	if err != nil {
		return err
	}
	l.records++
	return nil
}

// errNoLog: the stream to append to does not exist, and appendJSON was
// not to create it.
var errNoLog = errors.New("position log does not exist")

// appendJSON appends one record, creating the stream if it is missing and
// create allows. Retries may append a record twice; a repeated position
// is harmless.
func (s *StreamOffsetStore) appendJSON(ctx context.Context, streamURL string, v any, create bool) error {
	body, err := json.Marshal([]any{v})
	if err != nil {
		return err
	}
	created := false
	return protocol.Retry(ctx, s.retry, s.client.RefusedPoll, func(int) protocol.Try {
		try := s.post(ctx, streamURL, body)
		if try.Status != http.StatusNotFound {
			return try
		}
		if !create {
			return protocol.Try{Err: errNoLog}
		}
		if created {
			return try
		}
		created = true
		if err := s.client.CreateStream(ctx, streamURL, protocol.StreamOptions{ContentType: protocol.ContentTypeJSON}); err != nil {
			// CreateStream retried already: an error that outlasted its
			// policy ended on a retryable failure, an answer (429, 5xx)
			// as well as a network error; other errors are retryable as
			// network failures are.
			return protocol.Try{Err: err, Retryable: errors.Is(err, protocol.ErrRetriesExhausted) || protocol.Retryable(err)}
		}
		return s.post(ctx, streamURL, body)
	})
}

// post appends body once; the Try says how it ended.
func (s *StreamOffsetStore) post(ctx context.Context, streamURL string, body []byte) protocol.Try {
	ctx, cancel := s.client.WithTimeout(ctx)
	defer cancel()
	req, err := s.client.NewRequest(ctx, http.MethodPost, streamURL, bytes.NewReader(body))
	if err != nil {
		return protocol.Try{Err: err}
	}
	req.Header.Set("Content-Type", protocol.ContentTypeJSON)
	resp, written, err := s.client.Send(req)
	if err != nil {
		return protocol.TransportTry(fmt.Errorf("store position in %s: %w", protocol.RedactURL(streamURL), err), written)
	}
	defer protocol.DrainClose(resp.Body)
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return protocol.Try{}
	}
	return s.client.StatusTry(http.MethodPost, protocol.RedactURL(streamURL), resp.StatusCode, "",
		protocol.RetryAfter(resp.Header, time.Minute))
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
