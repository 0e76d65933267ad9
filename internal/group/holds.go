package group

// Holds reports, without a request, whether the stream is still this
// member's to write for: the lease has not ended and the member's session
// has not run past its local deadline. Unlike Valid it stays true while a
// revoked lease waits for its Release, so that the message in hand during
// a handover may still write its outputs (exactly-once outputs check it
// before each write; the server fences them by Epoch once a newer owner
// wrote).
func (l *Lease) Holds() bool {
	select {
	case <-l.ended:
		return false
	default:
	}
	return l.m.sessionValid(l.session)
}
