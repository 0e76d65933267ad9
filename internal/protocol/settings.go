package protocol

import (
	"context"
	"fmt"
	"sync"

	"github.com/ThreeDotsLabs/watermill"
)

// StreamSettings creates streams for the Publisher and SubscribeInitialize,
// and decides about one that exists with another TTL or expiry: it is used
// as it is, with one warning per topic (at Info: Watermill's LoggerAdapter
// has no Warn level), unless strict asks for ErrStreamConflict. Changing
// StreamTTL between two deploys so never stops publishing to the topics
// that exist.
type StreamSettings struct {
	Client *Client
	Logger watermill.LoggerAdapter
	Strict bool
	warned sync.Map // topics whose stream settings differ, logged once each
	// announced: stream URLs whose first creation (or finding) was logged.
	announced sync.Map
}

// Ensure creates the stream of topic at streamURL, or finds it.
func (s *StreamSettings) Ensure(ctx context.Context, topic, streamURL string, opts StreamOptions) error {
	created, differs, err := s.Client.EnsureStream(ctx, streamURL, opts)
	if err != nil {
		return err
	}
	s.announce(topic, streamURL, created)
	if !differs {
		return nil
	}
	if s.Strict {
		return fmt.Errorf("%w: %s has another TTL or expiry (StrictStreamSettings)", ErrStreamConflict, RedactURL(streamURL))
	}
	if _, warned := s.warned.LoadOrStore(topic, true); !warned {
		s.Logger.Info("Stream exists with another TTL or expiry; using it as it is (StrictStreamSettings makes this an error)",
			watermill.LogFields{"topic": topic, "stream_url": RedactURL(streamURL)})
	}
	return nil
}

// announce logs, once per stream URL, where a topic's stream is: a URL
// written where no reader looks is found in the log, not by its absence.
func (s *StreamSettings) announce(topic, streamURL string, created bool) {
	if _, done := s.announced.LoadOrStore(streamURL, true); done {
		return
	}
	msg := "Stream found"
	if created {
		msg = "Stream created"
	}
	s.Logger.Info(msg, watermill.LogFields{"topic": topic, "stream_url": RedactURL(streamURL)})
}
