// Package positionlog keeps a consumer's position in streams on the
// server: per group and topic a root stream holds pointers to the current
// log, and each log takes one record per stored position. Logs rotate
// after a bound so that a load reads few records; the root package's
// StreamOffsetStore is its public face.
package positionlog

import (
	"context"
	"errors"
	"strconv"
	"sync"

	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
	"github.com/durablestreams/watermill-durablestreams/retry"
)

// Config is what the logs need from the store that owns them.
type Config struct {
	// Client sends every request.
	Client *protocol.Client
	// RetryPolicy bounds the retries of reads and appends.
	RetryPolicy retry.Policy
	// RotateEvery is how many positions a log takes before the next one
	// begins; the caller applies the default.
	RotateEvery int
}

// Logs are the position logs of one store, each under its root URL; P is
// the record a log holds (the root's Position: this package stores it as
// JSON and never looks inside).
// Safe for concurrent use; positions under one root are loaded and stored
// one at a time.
type Logs[P any] struct {
	cfg Config

	mu   sync.Mutex
	logs map[string]*state
}

// state is what the store knows about the log under one root.
type state struct {
	mu      sync.Mutex
	loaded  bool
	gen     int
	records int
}

// New returns logs that send their requests as cfg says.
func New[P any](cfg Config) *Logs[P] {
	return &Logs[P]{cfg: cfg, logs: make(map[string]*state)}
}

// state returns the state of the log under root. A root URL names one
// group and topic (both are escaped path segments), so keying by it keeps
// one state per pair.
func (ls *Logs[P]) state(root string) *state {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	l, ok := ls.logs[root]
	if !ok {
		l = &state{}
		ls.logs[root] = l
	}
	return l
}

type logPointer struct {
	Gen int `json:"gen"`
}

// maxLoadAttempts bounds how often a load follows rotations that race it.
const maxLoadAttempts = 10

func logURL(root string, gen int) string { return root + "/" + strconv.Itoa(gen) }

// Load returns the last position stored under root; ok is false when
// there is none.
func (ls *Logs[P]) Load(ctx context.Context, root string) (P, bool, error) {
	l := ls.state(root)
	l.mu.Lock()
	defer l.mu.Unlock()
	return ls.load(ctx, root, l)
}

// load reads the pointer, then the log it names. A rotation by another
// store may delete that log between the two reads: then the pointer has
// moved on, and is read again.
func (ls *Logs[P]) load(ctx context.Context, root string, l *state) (P, bool, error) {
	gen, err := ls.pointer(ctx, root)
	if err != nil {
		var zero P
		return zero, false, err
	}
	for attempt := 0; ; attempt++ {
		var pos P
		exists, ok, n, err := ls.readLast(ctx, logURL(root, gen), &pos)
		if err != nil {
			var zero P
			return zero, false, err
		}
		if !exists && attempt < maxLoadAttempts {
			// Never written, or rotated away under us: then the pointer
			// has moved on.
			now, err := ls.pointer(ctx, root)
			if err != nil {
				var zero P
				return zero, false, err
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
func (ls *Logs[P]) pointer(ctx context.Context, root string) (int, error) {
	var ptr logPointer
	_, _, _, err := ls.readLast(ctx, root, &ptr)
	return ptr.Gen, err
}

// Store appends pos to the current log under root, first moving on to a
// new log when this one is full. It returns once the server has
// acknowledged the append.
func (ls *Logs[P]) Store(ctx context.Context, root string, pos P) error {
	l := ls.state(root)
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.loaded {
		if _, _, err := ls.load(ctx, root, l); err != nil {
			return err
		}
	}
	if l.records >= ls.cfg.RotateEvery {
		return ls.rotate(ctx, root, l, pos)
	}
	err := ls.appendJSON(ctx, logURL(root, l.gen), pos, false)
	if errors.Is(err, errNoLog) {
		// Missing: never written, or rotated away by another store. A
		// log is created only once the pointer names it, so that no
		// position goes where Load does not look.
		if _, _, err := ls.load(ctx, root, l); err != nil {
			return err
		}
		if l.records == 0 {
			// Most likely never written: create it first rather than
			// meet one more 404 (PUT confirms a log that exists).
			if err := ls.cfg.Client.CreateStream(ctx, logURL(root, l.gen), protocol.StreamOptions{ContentType: protocol.ContentTypeJSON}); err != nil {
				return err
			}
		}
		err = ls.appendJSON(ctx, logURL(root, l.gen), pos, true)
	}
	if err != nil {
		return err
	}
	l.records++
	return nil
}

// rotate writes pos as the first record of the next log, then points the
// root at it: in that order, a crash in between loses nothing (the old
// log still holds the previous position and the pointer still names it).
// The old log is deleted last.
func (ls *Logs[P]) rotate(ctx context.Context, root string, l *state, pos P) error {
	next := l.gen + 1
	if err := ls.appendJSON(ctx, logURL(root, next), pos, true); err != nil {
		return err
	}
	if err := ls.appendJSON(ctx, root, logPointer{Gen: next}, true); err != nil {
		return err
	}
	ls.cfg.Client.DeleteBestEffort(ctx, logURL(root, l.gen))
	l.gen, l.records = next, 1
	return nil
}
