package group

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
	"github.com/durablestreams/watermill-durablestreams/retry"
)

// TestWireRetries: every request of the coordination goes through
// protocol.Retry, with its answers classified the same way: a 503 is
// retried after the server's Retry-After, a 400 is not retried, and when
// the retries run out only the fenced append (a write whose try may have
// been applied) says its outcome is unknown; the idempotent requests say
// the retries were exhausted.
func TestWireRetries(t *testing.T) {
	srv := dstest.Faults(t)
	c := &protocol.Client{HTTP: protocol.NewHTTPClient(2), RequestTimeout: 5 * time.Second}
	t.Cleanup(c.HTTP.CloseIdleConnections)

	type op struct {
		name     string
		method   string
		existing bool // the stream must exist first
		// idempotent: exhausted retries read ErrRetriesExhausted, not
		// ErrOutcomeUnknown.
		idempotent bool
		run        func(ctx context.Context, p retry.Policy, url string) error
	}
	ops := []op{
		{"fencedPost", http.MethodPost, true, false, func(ctx context.Context, p retry.Policy, url string) error {
			o, reason, err := fencedPost(ctx, c, p, url, ownerRecord{Owner: "a", Claim: "c", Epoch: 0}, 0, false)
			if err == nil && o != written {
				return errors.New("outcome " + strconv.Itoa(int(o)) + " " + reason)
			}
			return err
		}},
		{"roster.append", http.MethodPost, true, true, func(ctx context.Context, p retry.Policy, url string) error {
			// A roster whose current log is url (window 0 of a group
			// folder that is url without "/0").
			r := &roster{cfg: Config{Client: c, RetryPolicy: p, window: time.Hour}, log: watermill.NopLogger{}}
			r.cfg.BaseURL, r.cfg.Group, r.cfg.Topic = splitMembersURL(t, url)
			return r.append(ctx, memberRecord{Member: "a", Kind: kindBeat})
		}},
		{"closeStream", http.MethodPost, true, true, func(ctx context.Context, p retry.Policy, url string) error {
			return closeStream(ctx, c, p, url)
		}},
		{"createLog", http.MethodPut, false, true, func(ctx context.Context, p retry.Policy, url string) error {
			o, reason, err := createLog(ctx, c, p, url)
			if err == nil && o != written {
				return errors.New("outcome " + strconv.Itoa(int(o)) + " " + reason)
			}
			return err
		}},
	}
	patient := retry.Policy{InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond, MaxAttempts: 5}
	twice := retry.Policy{InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond, MaxAttempts: 2}

	for _, o := range ops {
		t.Run(o.name, func(t *testing.T) {
			stream := func(t *testing.T) string {
				url := srv.StreamURL(dstest.StreamPath(t))
				if o.name == "roster.append" {
					url = Config{BaseURL: url, Group: "g", Topic: "t"}.membersURL(0)
				}
				if o.existing {
					require.NoError(t, c.CreateStream(t.Context(), url, protocol.StreamOptions{ContentType: protocol.ContentTypeJSON}))
				}
				return url
			}
			inject := func(t *testing.T, url string, f dstest.Fault) {
				f.Path, f.Method = url, o.method
				require.NoError(t, srv.InjectFault(t.Context(), f))
			}

			t.Run("503 with Retry-After is retried after it", func(t *testing.T) {
				url := stream(t)
				inject(t, url, dstest.Fault{Status: http.StatusServiceUnavailable, RetryAfter: 1, Count: 1})
				start := time.Now()
				require.NoError(t, o.run(t.Context(), patient, url))
				// A lower bound only: the backoff alone is 1ms.
				assert.GreaterOrEqual(t, time.Since(start), 900*time.Millisecond, "Retry-After was not honoured")
			})
			t.Run("400 is not retried", func(t *testing.T) {
				url := stream(t)
				inject(t, url, dstest.Fault{Status: http.StatusBadRequest, Count: 1})
				err := o.run(t.Context(), patient, url)
				// The test client builds the plain answer error, which
				// names the status.
				require.ErrorContains(t, err, ": 400")
				assert.NotErrorIs(t, err, protocol.ErrRetriesExhausted)
			})
			t.Run("retries run out", func(t *testing.T) {
				url := stream(t)
				inject(t, url, dstest.Fault{Status: http.StatusServiceUnavailable, Count: 5})
				err := o.run(t.Context(), twice, url)
				if o.idempotent {
					assert.ErrorIs(t, err, protocol.ErrRetriesExhausted)
					assert.NotErrorIs(t, err, protocol.ErrOutcomeUnknown)
				} else {
					assert.ErrorIs(t, err, protocol.ErrOutcomeUnknown)
				}
				require.ErrorContains(t, err, ": 503", "the last try's answer is wrapped")
			})
		})
	}
}

// splitMembersURL takes apart the URL of members log 0 of a group.
func splitMembersURL(t *testing.T, url string) (base, group, topic string) {
	t.Helper()
	const tail = "/__groups/g/t/members/0"
	if !strings.HasSuffix(url, tail) {
		t.Fatalf("%s is no members log 0 of group g on topic t", url)
	}
	return strings.TrimSuffix(url, tail), "g", "t"
}
