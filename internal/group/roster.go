package group

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// roster writes this member's records to the group's members logs. The
// group keeps one log per window of the server's clock
// (members/<window>, windows of Config.window): when the server's clock
// enters a new window, the first member to notice starts the next log and
// closes the current one with a record naming it, and deletes the one
// before. Everyone follows that record (an append answered "closed", a
// read that reaches the end), so the members never need synchronised
// clocks of their own, and the logs hold what the live members wrote in
// the last window or two, not everything since the group began. Each log
// is also created with a Stream-TTL, so that the last log of a group that
// stopped altogether expires.
type roster struct {
	cfg Config
	log watermill.LoggerAdapter

	mu sync.Mutex
	// skew is the server's clock minus ours, from the Date header of the
	// last answer; dated says we have seen one.
	skew  time.Duration
	dated bool
	// cur is the log appends go to.
	cur int64
}

// membersTTL is the Stream-TTL of a members log: it expires once no one
// has read or written it for three windows.
func (r *roster) membersTTL() time.Duration { return 3 * r.cfg.window }

// ttlSeconds is d as a Stream-TTL: whole seconds, rounded up, so that a
// TTL under a second (a window under a third of a second) is not 0,
// which the reference server refuses (500) and the Caddy server takes
// as a stream expired at once.
func ttlSeconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}

// window is the members log of the server's clock now.
func (r *roster) window() int64 {
	r.mu.Lock()
	skew := r.skew
	r.mu.Unlock()
	return time.Now().Add(skew).UnixNano() / int64(r.cfg.window)
}

func (r *roster) current() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur
}

// moveTo makes w the log appends go to; logs never go back.
func (r *roster) moveTo(w int64) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cur = max(r.cur, w)
	return r.cur
}

// observe takes the server's clock from an answer. Date has a resolution
// of a second; half of it is added so that the estimate is centred.
func (r *roster) observe(h http.Header) {
	t, err := http.ParseTime(h.Get("Date"))
	if err != nil {
		return
	}
	r.mu.Lock()
	r.skew = time.Until(t) + 500*time.Millisecond
	r.dated = true
	r.mu.Unlock()
}

// open finds the log to join: the one of the server's clock now, created
// if needed, or, if that one was closed already, the one its last record
// names. It returns that log.
func (r *roster) open(ctx context.Context) (int64, error) {
	w := r.window()
	for range 8 {
		h, err := r.create(ctx, w)
		switch {
		case errors.Is(err, protocol.ErrStreamClosed):
			next, ferr := r.follow(ctx, w)
			if ferr != nil {
				return 0, ferr
			}
			w = next
			continue
		case err != nil:
			return 0, err
		}
		r.observe(h)
		if now := r.window(); now > w {
			w = now // our clock was behind the server's
			continue
		}
		return r.moveTo(w), nil
	}
	return 0, fmt.Errorf("no open members log of group %q found after 8 tries", r.cfg.Group)
}

// create makes members log w (or confirms it): a log that exists closed
// is protocol.ErrStreamClosed.
func (r *roster) create(ctx context.Context, w int64) (http.Header, error) {
	c, url := r.cfg.Client, r.cfg.membersURL(w)
	var header http.Header
	err := protocol.RetryIdempotent(ctx, r.cfg.RetryPolicy, r.cfg.Client.RefusedPoll, func() protocol.Try {
		ctx, cancel := c.WithTimeout(ctx)
		defer cancel()
		req, err := c.NewRequest(ctx, http.MethodPut, url, nil)
		if err != nil {
			return protocol.Try{Err: err}
		}
		req.Header.Set("Content-Type", protocol.ContentTypeJSON)
		req.Header.Set(protocol.HeaderTTL, strconv.FormatInt(ttlSeconds(r.membersTTL()), 10))
		resp, written, err := c.Send(req)
		if err != nil {
			return protocol.TransportTry(fmt.Errorf("create %s: %w", protocol.RedactURL(url), err), written)
		}
		protocol.DrainClose(resp.Body)
		header = resp.Header
		switch resp.StatusCode {
		case http.StatusOK, http.StatusCreated:
			return protocol.Try{}
		case http.StatusConflict:
			// Closed (a later log was started), or another TTL (a member
			// configured with another window): the latter is used as
			// it is.
			if _, closed, _, err := r.tailOf(ctx, url); err == nil && closed {
				return protocol.Try{Err: fmt.Errorf("%w: %s", protocol.ErrStreamClosed, protocol.RedactURL(url))}
			}
			return protocol.Try{}
		}
		return statusTry(r.cfg.Client, http.MethodPut, url, resp.StatusCode, resp.Header)
	})
	return header, err
}

// tailOf is a HEAD of a members log.
func (r *roster) tailOf(ctx context.Context, url string) (offset string, closed, exists bool, err error) {
	c := r.cfg.Client
	ctx, cancel := c.WithTimeout(ctx)
	defer cancel()
	req, err := c.NewRequest(ctx, http.MethodHead, url, nil)
	if err != nil {
		return "", false, false, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", false, false, err
	}
	protocol.DrainClose(resp.Body)
	switch resp.StatusCode {
	case http.StatusOK:
		return resp.Header.Get(protocol.HeaderNextOffset), isTrue(resp.Header.Get(protocol.HeaderClosed)), true, nil
	case http.StatusNotFound:
		return "", false, false, nil
	}
	return "", false, false, statusError(r.cfg.Client, http.MethodHead, url, resp.StatusCode, resp.Header)
}

// follow reads closed log w for the record naming the next log. A log
// closed without one (by hand) is followed by the next window, or the
// server's clock's if that is later.
func (r *roster) follow(ctx context.Context, w int64) (int64, error) {
	recs, _, _, err := readRecords(ctx, r.cfg.Client, r.cfg.RetryPolicy, r.cfg.membersURL(w), memberRecord.problem)
	if err != nil {
		return 0, err
	}
	for i := len(recs) - 1; i >= 0; i-- {
		if r.names(recs[i], w) {
			return recs[i].Window, nil
		}
	}
	return max(w+1, r.window()), nil
}

// names says whether rec is a next record that log w may be followed by:
// a later window, and none past the one after the server's clock (a
// member rotates only when the server's clock has reached the new window;
// one more allows for a clock read a moment apart). A record naming a
// window far ahead, written by anyone but a member, would take the members
// that follow it to a log that newcomers, who start at the server's clock,
// never read: the group would split in two.
func (r *roster) names(rec memberRecord, w int64) bool {
	return rec.Kind == kindNext && rec.Window > w && rec.Window <= r.window()+1
}

// append writes rec to the current members log, following the group to
// the next log when the current one was closed, and starting the log of
// the server's clock when the current one is gone (a server that lost
// its data). Transient failures are retried under the policy; a
// duplicate record is harmless.
func (r *roster) append(ctx context.Context, rec memberRecord) error {
	for range 8 {
		w := r.current()
		var status int
		var h http.Header
		err := protocol.RetryIdempotent(ctx, r.cfg.RetryPolicy, r.cfg.Client.RefusedPoll, func() protocol.Try {
			var written bool
			var err error
			status, h, written, err = post(ctx, r.cfg.Client, r.cfg.membersURL(w), rec, -1, 0, false)
			switch {
			case err != nil:
				return protocol.TransportTry(err, written)
			case protocol.RetryableStatus(status):
				return statusTry(r.cfg.Client, http.MethodPost, r.cfg.membersURL(w), status, h)
			}
			return protocol.Try{}
		})
		if err != nil {
			return err
		}
		switch {
		case status >= 200 && status < 300:
			r.observe(h)
			return nil
		case status == http.StatusConflict && isTrue(h.Get(protocol.HeaderClosed)):
			next, err := r.follow(ctx, w)
			if err != nil {
				return err
			}
			if _, err := r.create(ctx, next); err != nil && !errors.Is(err, protocol.ErrStreamClosed) {
				return err
			}
			r.moveTo(next)
		case status == http.StatusNotFound:
			next := max(w, r.window())
			if _, err := r.create(ctx, next); err != nil && !errors.Is(err, protocol.ErrStreamClosed) {
				return err
			}
			r.log.Info("The consumer group's members log was gone (a server that lost its data?); started it again", watermill.LogFields{"members_log": protocol.RedactURL(r.cfg.membersURL(next))})
			r.moveTo(next)
		default:
			return statusError(r.cfg.Client, http.MethodPost, r.cfg.membersURL(w), status, h)
		}
	}
	return fmt.Errorf("append to the members log of group %q: it kept moving", r.cfg.Group)
}

// rotate starts the log of the server's clock when it has passed the
// current one: it creates it, closes the current one with a record naming
// it, and deletes the one before. Of members rotating at once, one closes
// the log; the others follow its record.
func (r *roster) rotate(ctx context.Context, me, inc string) error {
	cur, next := r.current(), r.window()
	if next <= cur {
		return nil
	}
	if _, err := r.create(ctx, next); err != nil {
		if !errors.Is(err, protocol.ErrStreamClosed) {
			return err
		}
		// Someone rotated past next already: append follows the chain.
	}
	status, h, _, err := post(ctx, r.cfg.Client, r.cfg.membersURL(cur), memberRecord{Member: me, Inc: inc, Kind: kindNext, Window: next}, -1, 0, true)
	switch {
	case err != nil:
		return err
	case status >= 200 && status < 300:
		r.cfg.Client.DeleteBestEffort(ctx, r.cfg.membersURL(cur-1))
		r.log.Debug("Started the next consumer group members log", watermill.LogFields{"members_log": protocol.RedactURL(r.cfg.membersURL(next))})
	case status == http.StatusConflict && isTrue(h.Get(protocol.HeaderClosed)):
		if next, err = r.follow(ctx, cur); err != nil {
			return err
		}
	case status == http.StatusNotFound:
	default:
		return statusError(r.cfg.Client, http.MethodPost, r.cfg.membersURL(cur), status, h)
	}
	r.moveTo(next)
	return nil
}

func isTrue(v string) bool { return strings.EqualFold(strings.TrimSpace(v), "true") }
