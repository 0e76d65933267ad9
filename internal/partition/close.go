package partition

import (
	"fmt"
	"strings"
	"sync"
)

// closeParallelism bounds the partitions closed at a time.
const closeParallelism = 8

// CloseAll closes every partition stream of topic, of n, with closeOne
// (k the partition), a few at a time. The partitions are closed even when
// some fail; the error, a *PartialCloseError, names those closed and
// those not.
func CloseAll(topic string, n int, closeOne func(k int) error) error {
	errs := make([]error, n)
	sem := make(chan struct{}, closeParallelism)
	var wg sync.WaitGroup
	for k := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[k] = closeOne(k)
		}()
	}
	wg.Wait()
	var closed, failed []string
	var failures []error
	for k, err := range errs {
		name := StreamName(topic, k, n)
		if err == nil {
			closed = append(closed, name)
			continue
		}
		failed = append(failed, name)
		failures = append(failures, err)
	}
	if failures == nil {
		return nil
	}
	return &PartialCloseError{topic: topic, closed: closed, failed: failed, errs: failures}
}

// PartialCloseError is a CloseStream with Partitions of which some
// partitions failed to close: it names those closed and those not, and
// errors.Is sees each failure. Its text keeps the root package's prefix
// it was born with.
type PartialCloseError struct {
	topic          string
	closed, failed []string
	errs           []error
}

func (e *PartialCloseError) Error() string {
	closed := "none"
	if len(e.closed) > 0 {
		closed = strings.Join(e.closed, ", ")
	}
	reasons := make([]string, len(e.errs))
	for i, err := range e.errs {
		// One "durablestreams:" prefix for the whole message.
		reasons[i] = strings.TrimPrefix(err.Error(), "durablestreams: ")
	}
	return fmt.Sprintf("durablestreams: close stream %q: %d of %d partition(s) not closed (%s); closed: %s: %s",
		e.topic, len(e.failed), len(e.failed)+len(e.closed), strings.Join(e.failed, ", "), closed, strings.Join(reasons, "; "))
}

// Unwrap returns the failures.
func (e *PartialCloseError) Unwrap() []error { return e.errs }
