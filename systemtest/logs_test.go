package systemtest

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
)

// logEntry is one line a logRecorder kept, with its With fields merged.
type logEntry struct {
	Level  string // ERROR, INFO, DEBUG, TRACE
	Msg    string
	Err    error
	Fields watermill.LogFields
	At     time.Time
}

func (e logEntry) String() string {
	return fmt.Sprintf("%s %q err=%v %v", e.Level, e.Msg, e.Err, e.Fields)
}

// logRecorder keeps every line, structured, for tests that assert on the
// level, the message, the URL and the cause of what a user would see.
// It signals each new line on changed, so that a test waits for a line
// without sleeping.
type logRecorder struct {
	mu      sync.Mutex
	entries []logEntry
	changed chan struct{}
}

func newLogRecorder() *logRecorder { return &logRecorder{changed: make(chan struct{})} }

func (l *logRecorder) add(e logEntry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e.At = time.Now()
	l.entries = append(l.entries, e)
	close(l.changed)
	l.changed = make(chan struct{})
}

// find returns the lines at level whose message contains msg.
func (l *logRecorder) find(level, msg string) []logEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []logEntry
	for _, e := range l.entries {
		if e.Level == level && strings.Contains(e.Msg, msg) {
			out = append(out, e)
		}
	}
	return out
}

// wait returns the first line at level containing msg once there is one,
// or false when done closes first.
func (l *logRecorder) wait(done <-chan struct{}, level, msg string) (logEntry, bool) {
	for {
		l.mu.Lock()
		changed := l.changed
		l.mu.Unlock()
		if found := l.find(level, msg); len(found) > 0 {
			return found[0], true
		}
		select {
		case <-changed:
		case <-done:
			return logEntry{}, false
		}
	}
}

func (l *logRecorder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, e := range l.entries {
		b.WriteString(e.String())
		b.WriteByte('\n')
	}
	return b.String()
}

func (l *logRecorder) Error(msg string, err error, f watermill.LogFields) {
	l.add(logEntry{Level: "ERROR", Msg: msg, Err: err, Fields: f.Copy()})
}
func (l *logRecorder) Info(msg string, f watermill.LogFields) {
	l.add(logEntry{Level: "INFO", Msg: msg, Fields: f.Copy()})
}
func (l *logRecorder) Debug(msg string, f watermill.LogFields) {
	l.add(logEntry{Level: "DEBUG", Msg: msg, Fields: f.Copy()})
}
func (l *logRecorder) Trace(msg string, f watermill.LogFields) {
	l.add(logEntry{Level: "TRACE", Msg: msg, Fields: f.Copy()})
}
func (l *logRecorder) With(f watermill.LogFields) watermill.LoggerAdapter {
	return &logRecorderWith{l, f}
}

// logRecorderWith is a With child writing into its parent.
type logRecorderWith struct {
	parent *logRecorder
	fields watermill.LogFields
}

func (w *logRecorderWith) Error(msg string, err error, f watermill.LogFields) {
	w.parent.Error(msg, err, w.fields.Add(f))
}
func (w *logRecorderWith) Info(msg string, f watermill.LogFields) {
	w.parent.Info(msg, w.fields.Add(f))
}
func (w *logRecorderWith) Debug(msg string, f watermill.LogFields) {
	w.parent.Debug(msg, w.fields.Add(f))
}
func (w *logRecorderWith) Trace(msg string, f watermill.LogFields) {
	w.parent.Trace(msg, w.fields.Add(f))
}
func (w *logRecorderWith) With(f watermill.LogFields) watermill.LoggerAdapter {
	return &logRecorderWith{w.parent, w.fields.Add(f)}
}
