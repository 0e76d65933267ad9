package systemtest

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	ds "github.com/durablestreams/watermill-durablestreams"
)

// An Async Publish of several messages racing Close is all or nothing per
// stream: a call that returns an error has none of its messages in the
// stream (republishing it cannot duplicate), and every message of the
// others is either in the stream or reported to OnAsyncError. Before, a
// call could get ErrPublisherClosed after its first messages were
// buffered, and those were written. With Partitions, a call whose later
// partition is refused returns nil and reports that partition's messages.
func TestAsyncPublishRacingCloseIsAllOrNothing(t *testing.T) {
	for _, partitions := range []int{0, 3} {
		t.Run("Partitions="+strconv.Itoa(partitions), func(t *testing.T) {
			const writers, perCall, calls, topic = 8, 3, 12, "t"
			var (
				mu       sync.Mutex
				reported = map[string]error{}
			)
			// A buffer of about five messages, so that most calls wait for
			// buffer space while requests are out, and Close finds them
			// waiting.
			cfg := ds.PublisherConfig{Async: true, Partitions: partitions, MaxBatchBytes: 1024, MaxBufferedBytes: 1024}
			cfg.OnAsyncError = func(_, uuid string, err error) {
				mu.Lock()
				defer mu.Unlock()
				reported[uuid] = err
			}
			pub, base := newTestPublisher(t, cfg)
			pad := strings.Repeat("x", 100)

			type call struct {
				uuids []string
				err   error
			}
			results := make([][]call, writers)
			started := make(chan struct{}, writers)
			closing := make(chan struct{})
			var wg sync.WaitGroup
			for g := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for c := range calls {
						if c == 1 {
							started <- struct{}{}
							<-closing
						}
						msgs := make([]*message.Message, perCall)
						uuids := make([]string, perCall)
						for j := range msgs {
							uuids[j] = watermill.NewUUID()
							msgs[j] = message.NewMessage(uuids[j], fmt.Appendf(nil, `{"g":%d,"c":%d,"j":%d,"pad":%q}`, g, c, j, pad))
							if partitions > 0 {
								msgs[j].Metadata.Set("partition_key", keyOf(j%partitions, partitions))
							}
						}
						err := pub.Publish(topic, msgs...)
						results[g] = append(results[g], call{uuids: uuids, err: err})
						if err != nil {
							return
						}
					}
				}()
			}
			for range writers {
				<-started
			}
			closed := make(chan error, 1)
			go func() { closed <- pub.Close() }()
			close(closing) // the writers publish while Close runs
			wg.Wait()
			closeErr := <-closed

			written := map[string]bool{}
			streams := []string{base + "/" + topic}
			if partitions > 0 {
				streams = streams[:0]
				for k := range partitions {
					streams = append(streams, partitionStream(base, topic, k, partitions))
				}
			}
			for _, s := range streams {
				for _, m := range decodeAll(t, readJSONStream(t, s)) {
					require.False(t, written[m.UUID], "message %s written twice", m.UUID)
					written[m.UUID] = true
				}
			}

			mu.Lock()
			defer mu.Unlock()
			var refused, lost int
			for g := range writers {
				for _, c := range results[g] {
					if c.err != nil {
						refused++
						require.ErrorIs(t, c.err, ds.ErrPublisherClosed)
						for _, uuid := range c.uuids {
							require.False(t, written[uuid], "Publish said %v, yet message %s of the call was written", c.err, uuid)
							require.NotContains(t, reported, uuid, "a call that returned an error has nothing to report")
						}
						continue
					}
					for _, uuid := range c.uuids {
						err, failed := reported[uuid]
						switch {
						case written[uuid] && failed && !errors.Is(err, ds.ErrOutcomeUnknown):
							t.Fatalf("message %s written, yet reported not written: %v", uuid, err)
						case !written[uuid] && !failed:
							t.Fatalf("message %s of a call that returned nil neither written nor reported", uuid)
						case failed:
							lost++
						}
					}
				}
			}
			t.Logf("%d calls refused, %d messages reported to OnAsyncError, %d written; Close: %v", refused, lost, len(written), closeErr)
			require.Positive(t, refused, "Close should have refused some calls")
		})
	}
}
