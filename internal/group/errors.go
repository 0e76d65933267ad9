package group

import (
	"errors"
	"fmt"
)

// ErrFenced means the lease is no longer this member's: either a newer owner
// claimed the stream (the server refused the write with 403), the
// member's session expired before it could heartbeat, the lease was
// released or revoked, or the server lost the ownership record. The
// member stores nothing more for that stream; the error is a *FencedError.
var ErrFenced = errors.New("consumer group lease lost (fenced)")

// ErrSuperseded means another instance joined the group with this member's
// ID after it: the newer instance takes the streams over and this one
// stops (see Member.Done). Member IDs must be unique among live instances.
var ErrSuperseded = errors.New("another instance joined the consumer group with this member ID")

// FencedError says which stream was lost and why.
type FencedError struct {
	Stream string
	Epoch  int64
	Reason string
}

func (e *FencedError) Error() string {
	return fmt.Sprintf("consumer group lease on stream %q (epoch %d) lost (fenced): %s", e.Stream, e.Epoch, e.Reason)
}

// Is makes errors.Is(err, ErrFenced) true.
func (e *FencedError) Is(target error) bool { return target == ErrFenced }

// Reasons a lease ends.
const (
	reasonStaleEpoch = "a newer owner claimed the stream (the server answered 403)"
	reasonExpired    = "the member's session expired: no heartbeat within the session timeout"
	reasonReleased   = "the lease was released"
	reasonLeft       = "the member left the group"
	reasonMissing    = "the ownership stream is gone (404); it is not recreated by a former owner"
	reasonSeqGap     = "the server does not know this owner's sequence (409): its producer state was lost"
	reasonClosed     = "a newer owner closed this owner's position log (409 Stream-Closed)"
	reasonSuperseded = "another instance joined the group with this member's ID; the newer one takes the streams over"
	reasonSealed     = "a newer owner sealed this owner's next position log (409)"
)
