package protocol

import (
	"net/url"
	"strings"
	"sync"

	"github.com/ThreeDotsLabs/watermill"
)

// StreamRoot is where the reference server and the Caddy-based server
// keep streams: http://host:port/v1/stream/<path>.
const StreamRoot = "/v1/stream"

// RootCheck says, once per Publisher or Subscriber, that BaseURL is not
// under the stream root. The Node reference server serves a stream at
// any path, so "http://127.0.0.1:4437" (without /v1/stream) works for
// the writer and for no reader configured as documented; the Caddy
// server answers 200 to anything outside its root, which the answer
// tables catch (ErrNotStreamEndpoint). Other servers may keep streams
// elsewhere (PROTOCOL.md §3 prescribes no layout), so this is a log line,
// not an error. The check is on the URL alone: it costs no request.
type RootCheck struct {
	Base   string // BaseURL; empty with a TopicURL hook alone
	Logger watermill.LoggerAdapter
	once   sync.Once
}

// Note logs the line at the first use of the component.
func (c *RootCheck) Note() {
	c.once.Do(func() {
		expected, ok := ExpectedRoot(c.Base)
		if ok {
			return
		}
		c.Logger.Error("BaseURL is not under "+StreamRoot+", where Durable Streams servers keep their streams: "+
			"streams are written and read where BaseURL says, which a reader configured with "+StreamRoot+" does not see",
			nil, watermill.LogFields{"base_url": RedactURL(c.Base), "expected_base_url": expected})
	})
}

// ExpectedRoot returns the stream root on base's server, and whether base
// is under it already (or there is no base to check).
func ExpectedRoot(base string) (string, bool) {
	if base == "" {
		return "", true
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", true // Validate refused it already
	}
	under := strings.Contains(strings.TrimRight(u.Path, "/")+"/", StreamRoot+"/")
	return RedactURL(u.Scheme + "://" + u.Host + StreamRoot), under
}
