package durablestreams

import (
	"context"
	"fmt"
	"sync"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
)

// streamSettings creates streams for the Publisher and SubscribeInitialize,
// and decides about one that exists with another TTL or expiry: it is used
// as it is, with one warning per topic (at Info: Watermill's LoggerAdapter
// has no Warn level), unless strict asks for ErrStreamConflict. Changing
// StreamTTL between two deploys so never stops publishing to the topics
// that exist.
type streamSettings struct {
	client *protocol.Client
	logger watermill.LoggerAdapter
	strict bool
	warned sync.Map // topics whose stream settings differ, logged once each
	// announced: stream URLs whose first creation (or finding) was logged.
	announced sync.Map
}

func (s *streamSettings) ensure(ctx context.Context, topic, streamURL string, opts protocol.StreamOptions) error {
	created, differs, err := s.client.EnsureStream(ctx, streamURL, opts)
	if err != nil {
		return err
	}
	s.announce(topic, streamURL, created)
	if !differs {
		return nil
	}
	if s.strict {
		return fmt.Errorf("%w: %s has another TTL or expiry (StrictStreamSettings)", ErrStreamConflict, protocol.RedactURL(streamURL))
	}
	if _, warned := s.warned.LoadOrStore(topic, true); !warned {
		s.logger.Info("Stream exists with another TTL or expiry; using it as it is (StrictStreamSettings makes this an error)",
			watermill.LogFields{"topic": topic, "stream_url": protocol.RedactURL(streamURL)})
	}
	return nil
}

// announce logs, once per stream URL, where a topic's stream is: a URL
// written where no reader looks is found in the log, not by its absence.
func (s *streamSettings) announce(topic, streamURL string, created bool) {
	if _, done := s.announced.LoadOrStore(streamURL, true); done {
		return
	}
	msg := "Stream found"
	if created {
		msg = "Stream created"
	}
	s.logger.Info(msg, watermill.LogFields{"topic": topic, "stream_url": protocol.RedactURL(streamURL)})
}
