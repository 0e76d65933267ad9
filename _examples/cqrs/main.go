// Command cqrs runs Watermill's CQRS component on Durable Streams with
// three replicas of one service, as it would be deployed: a BookRoom
// command is handled by a command handler that publishes a RoomBooked
// event; an event handler builds a read model from the events.
//
// Commands and events are keyed by room (the aggregate): the command and
// event topics have three partitions, ds.KeyCommands and ds.KeyEvents set
// each message's partition key from its PartitionKey method, and every
// handler reads as a ConsumerGroup of its own name. So the replicas share
// the work, each command is handled by exactly one of them, and the
// commands of one room are handled in order. The ds.ExactlyOnce
// middleware writes each command's event exactly once, through crashes
// and rebalances.
//
// The messages are encoded by cqrs.JSONMarshaler, which names each one in
// its "name" metadata; the Durable Streams JSONMarshaler keeps metadata,
// so the processors can route what they read back. Any reader of the
// streams (a browser, the official clients) sees envelopes such as
//
//	{"uuid":"…","metadata":{"name":"RoomBooked","partition_key":"101"},"payload":{"room_id":"101",…}}
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

// PartitionKey keys the command by its aggregate, the room.
func (c *BookRoom) PartitionKey() string { return c.RoomID }

// RoomBooked is an event.
type RoomBooked struct {
	BookingID string `json:"booking_id"`
	RoomID    string `json:"room_id"`
	Guest     string `json:"guest"`
	Nights    int    `json:"nights"`
}

// PartitionKey keys the event by its aggregate, the room.
func (e *RoomBooked) PartitionKey() string { return e.RoomID }

const (
	replicas   = 3
	partitions = 3
)

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

	publisher, err := ds.NewPublisher(ds.PublisherConfig{BaseURL: baseURL, Partitions: partitions}, logger)
	if err != nil {
		return err
	}
	defer publisher.Close()
	commandBus, eventBus, err := newBuses(publisher, logger)
	if err != nil {
		return err
	}

	report := newBookingsReport()
	work := newTally()
	for i := range replicas {
		stop, err := startReplica(ctx, fmt.Sprintf("replica-%d", i+1), baseURL, eventBus, report, work, logger)
		if err != nil {
			return err
		}
		defer stop()
	}

	// Book rooms until every replica has handled commands: the group
	// hands partitions to a replica as it joins.
	rooms := []string{"101", "102", "103", "104", "105", "106", "107", "108", "109"}
	guests := []string{"Ada", "Grace", "Linus", "Barbara", "Ken", "Margaret"}
	sent := 0
	for round := 0; round < 10 && work.replicas() < replicas; round++ {
		for i, room := range rooms {
			cmd := &BookRoom{RoomID: room, Guest: fmt.Sprintf("%s-%d", guests[(i+round)%len(guests)], round), Nights: 1 + i%3}
			// Send returns once the command stream has it: durable.
			if err := commandBus.Send(ctx, cmd); err != nil {
				return err
			}
			sent++
		}
		if _, err := report.waitFor(ctx, sent); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "sent %d BookRoom commands\n", sent)
	for _, line := range work.lines() {
		fmt.Fprintln(out, line)
	}
	if twice := work.twice(); twice > 0 {
		return fmt.Errorf("%d commands were handled more than once", twice)
	}
	fmt.Fprintf(out, "every command handled once; bookings in the report: %d\n", sent)
	return nil
}

// newBuses sends commands and publishes events keyed by their aggregate.
func newBuses(publisher message.Publisher, logger watermill.LoggerAdapter) (*cqrs.CommandBus, *cqrs.EventBus, error) {
	commandBus, err := cqrs.NewCommandBusWithConfig(publisher, cqrs.CommandBusConfig{
		GeneratePublishTopic: func(p cqrs.CommandBusGeneratePublishTopicParams) (string, error) {
			return "commands." + p.CommandName, nil
		},
		OnSend:    ds.KeyCommands,
		Marshaler: marshaler,
		Logger:    logger,
	})
	if err != nil {
		return nil, nil, err
	}
	eventBus, err := cqrs.NewEventBusWithConfig(publisher, cqrs.EventBusConfig{
		GeneratePublishTopic: func(p cqrs.GenerateEventPublishTopicParams) (string, error) {
			return "events." + p.EventName, nil
		},
		OnPublish: ds.KeyEvents,
		Marshaler: marshaler,
		Logger:    logger,
	})
	return commandBus, eventBus, err
}

var marshaler = cqrs.JSONMarshaler{GenerateName: cqrs.StructName}

// startReplica runs one replica of the service: a Router with the
// command and event handlers, each reading as a ConsumerGroup of its own
// name, shared with the other replicas. It returns once the Router runs;
// stop closes it. It is one function on purpose: it reads top to bottom as
// the wiring a service of your own copies.
func startReplica(ctx context.Context, name, baseURL string, eventBus *cqrs.EventBus, report *bookingsReport, work *tally, logger watermill.LoggerAdapter) (stop func(), err error) {
	newSubscriber := func(handlerName string) (message.Subscriber, error) {
		// Partitions as the Publisher's: the first of them to start
		// records the count on the server.
		return ds.NewSubscriber(ds.SubscriberConfig{BaseURL: baseURL, ConsumerGroup: handlerName, Partitions: partitions}, logger)
	}
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, logger)
	if err != nil {
		return nil, err
	}
	// The event a command handler publishes is written once per command,
	// also when the command is handled again after a crash or a
	// rebalance: commands and events have as many partitions and the same
	// key (the room), so partition i of the events is written only by the
	// owner of partition i of the commands.
	router.AddMiddleware(ds.ExactlyOnce)
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
		return nil, err
	}
	eventProcessor, err := cqrs.NewEventProcessorWithConfig(router, cqrs.EventProcessorConfig{
		GenerateSubscribeTopic: func(p cqrs.EventProcessorGenerateSubscribeTopicParams) (string, error) {
			return "events." + p.EventName, nil
		},
		SubscriberConstructor: func(p cqrs.EventProcessorSubscriberConstructorParams) (message.Subscriber, error) {
			return newSubscriber(p.HandlerName)
		},
		Marshaler: marshaler,
		Logger:    logger,
	})
	if err != nil {
		return nil, err
	}
	err = commandProcessor.AddHandlers(cqrs.NewCommandHandler("BookRoomHandler",
		func(ctx context.Context, cmd *BookRoom) error {
			work.handled(name, cmd.RoomID+"/"+cmd.Guest)
			// Publish returns once the event stream has it; only then is
			// the command acked. Under ds.ExactlyOnce a command handled
			// again finds its event written and writes no second one.
			return eventBus.Publish(ctx, &RoomBooked{
				BookingID: "booking-" + cmd.RoomID + "-" + cmd.Guest,
				RoomID:    cmd.RoomID,
				Guest:     cmd.Guest,
				Nights:    cmd.Nights,
			})
		}))
	if err != nil {
		return nil, err
	}
	if err := eventProcessor.AddHandlers(cqrs.NewEventHandler("BookingsReport", report.onRoomBooked)); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- router.Run(ctx) }()
	stop = func() {
		_ = router.Close()
		<-done
	}
	select {
	case <-router.Running():
		return stop, nil
	case err := <-done:
		return nil, fmt.Errorf("%s: router stopped: %w", name, err)
	}
}

// tally counts the commands each replica handled.
type tally struct {
	mu    sync.Mutex
	by    map[string]int // replica → commands
	times map[string]int // command → times handled
}

func newTally() *tally { return &tally{by: map[string]int{}, times: map[string]int{}} }

func (t *tally) handled(replica, command string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.by[replica]++
	t.times[command]++
}

func (t *tally) replicas() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.by)
}

func (t *tally) twice() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, times := range t.times {
		if times > 1 {
			n++
		}
	}
	return n
}

func (t *tally) lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var lines []string
	for replica, n := range t.by {
		lines = append(lines, fmt.Sprintf("%s handled %d commands", replica, n))
	}
	slices.Sort(lines)
	return lines
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
