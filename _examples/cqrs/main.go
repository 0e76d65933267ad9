// Command cqrs runs Watermill's CQRS component on Durable Streams: every
// command and every event type is a stream. A BookRoom command is handled
// by a command handler that publishes a RoomBooked event; an event handler
// builds a read model from the events.
//
// The messages are encoded by cqrs.JSONMarshaler, which names each one in
// its "name" metadata; the Durable Streams JSONMarshaler keeps metadata,
// so the processors can route what they read back. Any reader of the
// streams (a browser, the official clients) sees envelopes such as
//
//	{"uuid":"…","metadata":{"name":"RoomBooked"},"payload":{"room_id":"101",…}}
//
// It needs a Durable Streams server: pass its base URL with -server or in
// DURABLE_STREAMS_URL (streams live under <server>/v1/stream/):
//
//	go run . -server http://127.0.0.1:4437
//
// From a clone of the repository, this starts the pinned reference server
// for it:
//
//	node testserver/with-server.mjs go run ./_examples/cqrs
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/components/cqrs"
	"github.com/ThreeDotsLabs/watermill/message"

	ds "github.com/durablestreams/watermill-durablestreams"
)

// BookRoom is a command.
type BookRoom struct {
	RoomID string `json:"room_id"`
	Guest  string `json:"guest"`
	Nights int    `json:"nights"`
}

// RoomBooked is an event.
type RoomBooked struct {
	BookingID string `json:"booking_id"`
	RoomID    string `json:"room_id"`
	Guest     string `json:"guest"`
	Nights    int    `json:"nights"`
}

func main() {
	server := flag.String("server", os.Getenv("DURABLE_STREAMS_URL"),
		"base URL of the Durable Streams server, e.g. http://127.0.0.1:4437 (default $DURABLE_STREAMS_URL)")
	flag.Parse()
	if *server == "" {
		log.Fatal("no server: pass -server http://host:port or set DURABLE_STREAMS_URL " +
			"(from a clone of the repository: node testserver/with-server.mjs go run ./_examples/cqrs)")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Stdout, strings.TrimRight(*server, "/"))
	stop()
	if err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, out io.Writer, server string) error {
	out = &lockedWriter{w: out} // the handlers print too
	logger := watermill.NewStdLogger(false, false)
	// Every run gets streams of its own under this URL.
	baseURL := server + "/v1/stream/examples/cqrs-" + watermill.NewShortUUID()
	marshaler := cqrs.JSONMarshaler{GenerateName: cqrs.StructName}

	publisher, err := ds.NewPublisher(ds.PublisherConfig{BaseURL: baseURL}, logger)
	if err != nil {
		return err
	}
	defer publisher.Close()

	// Each handler reads as a consumer group of its own name, kept on the
	// Durable Streams server: the replicas of this service share its
	// messages (each handled once), and a restarted service goes on after
	// the last handled message.
	newSubscriber := func(handlerName string) (message.Subscriber, error) {
		return ds.NewSubscriber(ds.SubscriberConfig{
			BaseURL:       baseURL,
			ConsumerGroup: handlerName,
		}, logger)
	}

	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, logger)
	if err != nil {
		return err
	}
	commandBus, err := cqrs.NewCommandBusWithConfig(publisher, cqrs.CommandBusConfig{
		GeneratePublishTopic: func(p cqrs.CommandBusGeneratePublishTopicParams) (string, error) {
			return "commands." + p.CommandName, nil
		},
		Marshaler: marshaler,
		Logger:    logger,
	})
	if err != nil {
		return err
	}
	eventBus, err := cqrs.NewEventBusWithConfig(publisher, cqrs.EventBusConfig{
		GeneratePublishTopic: func(p cqrs.GenerateEventPublishTopicParams) (string, error) {
			return "events." + p.EventName, nil
		},
		Marshaler: marshaler,
		Logger:    logger,
	})
	if err != nil {
		return err
	}

	commandProcessor, err := cqrs.NewCommandProcessorWithConfig(router, cqrs.CommandProcessorConfig{
		GenerateSubscribeTopic: func(p cqrs.CommandProcessorGenerateSubscribeTopicParams) (string, error) {
			return "commands." + p.CommandName, nil
		},
		SubscriberConstructor: func(p cqrs.CommandProcessorSubscriberConstructorParams) (message.Subscriber, error) {
			return newSubscriber(p.HandlerName)
		},
		Marshaler: marshaler,
		Logger:    logger,
	})
	if err != nil {
		return err
	}
	eventProcessor, err := cqrs.NewEventProcessorWithConfig(router, cqrs.EventProcessorConfig{
		GenerateSubscribeTopic: func(p cqrs.EventProcessorGenerateSubscribeTopicParams) (string, error) {
			return "events." + p.EventName, nil
		},
		SubscriberConstructor: func(p cqrs.EventProcessorSubscriberConstructorParams) (message.Subscriber, error) {
			return newSubscriber(p.HandlerName)
		},
		// The processor routes by the "name" metadata, which has made the
		// round trip through the stream.
		OnHandle: func(p cqrs.EventProcessorOnHandleParams) error {
			fmt.Fprintf(out, "handling %s read from %s\n", p.Message.Metadata.Get("name"), message.SubscribeTopicFromCtx(p.Message.Context()))
			return p.Handler.Handle(p.Message.Context(), p.Event)
		},
		Marshaler: marshaler,
		Logger:    logger,
	})
	if err != nil {
		return err
	}

	report := newBookingsReport()
	err = commandProcessor.AddHandlers(cqrs.NewCommandHandler("BookRoomHandler",
		func(ctx context.Context, cmd *BookRoom) error {
			// Publish returns once the event stream has it; only then is
			// the command acked. A command handled again after a crash
			// books the same id, so the read model stays right.
			return eventBus.Publish(ctx, &RoomBooked{
				BookingID: "booking-" + cmd.RoomID + "-" + cmd.Guest,
				RoomID:    cmd.RoomID,
				Guest:     cmd.Guest,
				Nights:    cmd.Nights,
			})
		}))
	if err != nil {
		return err
	}
	if err := eventProcessor.AddHandlers(cqrs.NewEventHandler("BookingsReport", report.onRoomBooked)); err != nil {
		return err
	}

	routerDone := make(chan error, 1)
	go func() { routerDone <- router.Run(ctx) }()
	defer func() {
		_ = router.Close()
		<-routerDone
	}()
	select {
	case <-router.Running():
	case err := <-routerDone:
		return fmt.Errorf("router stopped: %w", err)
	}

	commands := []*BookRoom{
		{RoomID: "101", Guest: "Ada", Nights: 3},
		{RoomID: "102", Guest: "Grace", Nights: 1},
		{RoomID: "103", Guest: "Linus", Nights: 2},
	}
	for _, cmd := range commands {
		// Send returns once the command stream has it: durable.
		if err := commandBus.Send(ctx, cmd); err != nil {
			return err
		}
		fmt.Fprintf(out, "sent BookRoom for room %s\n", cmd.RoomID)
	}

	lines, err := report.waitFor(ctx, len(commands))
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "bookings report:")
	for _, line := range lines {
		fmt.Fprintln(out, "  "+line)
	}
	return nil
}

// bookingsReport is a read model built from RoomBooked events.
type bookingsReport struct {
	mu       sync.Mutex
	bookings map[string]RoomBooked // by booking id: events may come again
	changed  chan struct{}
}

func newBookingsReport() *bookingsReport {
	return &bookingsReport{bookings: make(map[string]RoomBooked), changed: make(chan struct{}, 1)}
}

func (r *bookingsReport) onRoomBooked(_ context.Context, event *RoomBooked) error {
	r.mu.Lock()
	r.bookings[event.BookingID] = *event
	r.mu.Unlock()
	select {
	case r.changed <- struct{}{}:
	default:
	}
	return nil
}

// waitFor returns the report's lines once it holds n bookings.
func (r *bookingsReport) waitFor(ctx context.Context, n int) ([]string, error) {
	for {
		r.mu.Lock()
		var lines []string
		for _, b := range r.bookings {
			lines = append(lines, fmt.Sprintf("room %s: %s, %d night(s) (%s)", b.RoomID, b.Guest, b.Nights, b.BookingID))
		}
		r.mu.Unlock()
		if len(lines) >= n {
			slices.Sort(lines)
			return lines, nil
		}
		select {
		case <-r.changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for %d bookings, have %d: %w", n, len(lines), ctx.Err())
		}
	}
}

// lockedWriter serialises writes from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
