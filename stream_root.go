package durablestreams

import (
	"errors"
	"net/url"
	"strings"
	"sync"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// streamRoot is where the reference server and the Caddy-based server
// keep streams: http://host:port/v1/stream/<path>.
const streamRoot = "/v1/stream"

// rootCheck says, once per Publisher or Subscriber, that BaseURL is not
// under the stream root. The Node reference server serves a stream at
// any path, so "http://127.0.0.1:4437" (without /v1/stream) works for
// the writer and for no reader configured as documented; the Caddy
// server answers 200 to anything outside its root, which the answer
// tables catch (ErrNotStreamEndpoint). Other servers may keep streams
// elsewhere (PROTOCOL.md §3 prescribes no layout), so this is a log line,
// not an error. The check is on the URL alone: it costs no request.
type rootCheck struct {
	base   string // BaseURL; empty with a TopicURL hook alone
	logger watermill.LoggerAdapter
	once   sync.Once
}

// note logs the line at the first use of the component.
func (c *rootCheck) note() {
	c.once.Do(func() {
		expected, ok := expectedRoot(c.base)
		if ok {
			return
		}
		c.logger.Error("BaseURL is not under "+streamRoot+", where Durable Streams servers keep their streams: "+
			"streams are written and read where BaseURL says, which a reader configured with "+streamRoot+" does not see",
			nil, watermill.LogFields{"base_url": protocol.RedactURL(c.base), "expected_base_url": expected})
	})
}

// hint adds to an ErrNotStreamEndpoint error where streams were expected,
// when BaseURL is not under the stream root.
func (c *rootCheck) hint(err error) error {
	if !errors.Is(err, ErrNotStreamEndpoint) {
		return err
	}
	if expected, ok := expectedRoot(c.base); !ok {
		return wrap(err, "BaseURL %s is not under %s; streams were expected under %s", protocol.RedactURL(c.base), streamRoot, expected)
	}
	return err
}

// expectedRoot returns the stream root on base's server, and whether base
// is under it already (or there is no base to check).
func expectedRoot(base string) (string, bool) {
	if base == "" {
		return "", true
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", true // Validate refused it already
	}
	under := strings.Contains(strings.TrimRight(u.Path, "/")+"/", streamRoot+"/")
	return protocol.RedactURL(u.Scheme + "://" + u.Host + streamRoot), under
}
