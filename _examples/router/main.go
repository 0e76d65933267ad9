// Command router runs a Watermill Router on Durable Streams: a handler
// consumes the "orders" stream and publishes confirmations to the
// "orders-confirmed" stream, behind the standard middlewares.
//
// The handler's outputs are durable before its input is acked: the
// Publisher's synchronous Publish returns only once the server has
// acknowledged the append (the output offsets printed below are the
// server's answer), and the Router acks the input message only after
// Publish returned. A crash in between delivers the input again, and the
// consumer group resumes after the last acked order.
//
// It needs a Durable Streams server: pass its base URL with -server or in
// DURABLE_STREAMS_URL (streams live under <server>/v1/stream/):
//
//	go run . -server http://127.0.0.1:4437
//
// From a clone of the repository, this starts the pinned reference server
// for it:
//
//	node testserver/with-server.mjs go run ./_examples/router
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	ds "github.com/durablestreams/watermill-durablestreams"
)

const (
	ordersTopic    = "orders"
	confirmedTopic = "orders-confirmed"
	poisonTopic    = "orders-poison"
)

// Order is the input message.
type Order struct {
	ID       string `json:"id"`
	Item     string `json:"item"`
	Quantity int    `json:"quantity"`
}

// Confirmation is the output message.
type Confirmation struct {
	OrderID string `json:"order_id"`
	Status  string `json:"status"`
}

var errInvalidQuantity = errors.New("quantity must be positive")

func main() {
	server := flag.String("server", os.Getenv("DURABLE_STREAMS_URL"),
		"base URL of the Durable Streams server, e.g. http://127.0.0.1:4437 (default $DURABLE_STREAMS_URL)")
	flag.Parse()
	if *server == "" {
		log.Fatal("no server: pass -server http://host:port or set DURABLE_STREAMS_URL " +
			"(from a clone of the repository: node testserver/with-server.mjs go run ./_examples/router)")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Stdout, strings.TrimRight(*server, "/"))
	stop()
	if err != nil {
		log.Fatal(err)
	}
}

// run is the whole example in one function on purpose: it reads top to
// bottom as the steps a program of your own takes.
func run(ctx context.Context, out io.Writer, server string) error {
	out = &lockedWriter{w: out} // the router's goroutines print too
	logger := watermill.NewStdLogger(false, false)
	// Every run gets streams of its own under this URL.
	baseURL := server + "/v1/stream/examples/router-" + watermill.NewShortUUID()

	publisher, err := ds.NewPublisher(ds.PublisherConfig{BaseURL: baseURL}, logger)
	if err != nil {
		return err
	}
	defer publisher.Close()

	orders := []Order{
		{ID: "order-1", Item: "keyboard", Quantity: 1},
		{ID: "order-2", Item: "monitor", Quantity: 2}, // the warehouse panics once on it
		{ID: "order-3", Item: "mouse", Quantity: 0},   // invalid: ends in the poison queue
	}
	for _, order := range orders {
		payload, err := json.Marshal(order)
		if err != nil {
			return err
		}
		msg := message.NewMessage(watermill.NewUUID(), payload)
		middleware.SetCorrelationID("checkout-"+order.ID, msg)
		if err := publisher.Publish(ordersTopic, msg); err != nil {
			return err
		}
		fmt.Fprintf(out, "published %s to %s at offset %s\n", order.ID, ordersTopic, msg.Metadata.Get(ds.MetadataOffset))
	}

	// The consumer group keeps its positions on the Durable Streams server
	// itself and shares the orders among every replica running this
	// program: each order is confirmed by one of them, and a restarted
	// service resumes after the last acked order.
	// Every order ends as one output (confirmed or poisoned); the Router
	// is closed only once each has been reported durable, so that closing
	// cannot cut a report short.
	outputs := make(chan struct{}, len(orders))
	router, err := newRouter(baseURL, publisher, offsetPrinter{out: out, printed: outputs}, logger)
	if err != nil {
		return err
	}
	routerDone := make(chan error, 1)
	go func() { routerDone <- router.Run(ctx) }()
	defer func() {
		_ = router.Close()
		<-routerDone
	}()

	if err := readResults(ctx, out, baseURL, logger, len(orders)); err != nil {
		return err
	}
	for range orders {
		select {
		case <-outputs:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// newRouter wires the handler and its middlewares.
func newRouter(baseURL string, publisher message.Publisher, printer offsetPrinter, logger watermill.LoggerAdapter) (*message.Router, error) {
	subscriber, err := ds.NewSubscriber(ds.SubscriberConfig{
		BaseURL:       baseURL,
		ConsumerGroup: "confirm-orders",
	}, logger)
	if err != nil {
		return nil, err
	}

	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, logger)
	if err != nil {
		return nil, err
	}
	poisonQueue, err := middleware.PoisonQueue(printer.wrap(publisher), poisonTopic)
	if err != nil {
		return nil, err
	}
	// The first middleware is the outermost: a panic becomes an error
	// (Recoverer), is retried (Retry), and only what still fails goes to
	// the poison queue, so that one bad order does not block the stream.
	router.AddMiddleware(
		middleware.CorrelationID,
		poisonQueue,
		middleware.Retry{MaxRetries: 2, InitialInterval: 10 * time.Millisecond, Logger: logger}.Middleware,
		middleware.Recoverer,
	)
	// Print where every output landed: once Publish returned, it is durable.
	router.AddPublisherDecorators(func(pub message.Publisher) (message.Publisher, error) {
		return printer.wrap(pub), nil
	})

	warehouse := &warehouse{panicOnce: map[string]bool{"order-2": true}}
	router.AddHandler("confirm-orders", ordersTopic, subscriber, confirmedTopic, publisher, warehouse.confirm)
	return router, nil
}

// warehouse confirms orders. Its flaky dependency panics once on some
// orders, as real ones do.
type warehouse struct {
	mu        sync.Mutex
	panicOnce map[string]bool
}

func (w *warehouse) confirm(msg *message.Message) ([]*message.Message, error) {
	var order Order
	if err := json.Unmarshal(msg.Payload, &order); err != nil {
		return nil, fmt.Errorf("decode order: %w", err)
	}
	if order.Quantity <= 0 {
		return nil, fmt.Errorf("order %s: %w", order.ID, errInvalidQuantity)
	}
	w.mu.Lock()
	flaky := w.panicOnce[order.ID]
	delete(w.panicOnce, order.ID)
	w.mu.Unlock()
	if flaky {
		panic("warehouse connection lost while confirming " + order.ID)
	}

	payload, err := json.Marshal(Confirmation{OrderID: order.ID, Status: "confirmed"})
	if err != nil {
		return nil, err
	}
	// The CorrelationID middleware copies the input's correlation id.
	return []*message.Message{message.NewMessage(watermill.NewUUID(), payload)}, nil
}

// offsetPrinter prints the offset of every message it published, and
// tells printed about each.
type offsetPrinter struct {
	message.Publisher
	out     io.Writer
	printed chan<- struct{}
}

func (p offsetPrinter) wrap(pub message.Publisher) offsetPrinter {
	p.Publisher = pub
	return p
}

func (p offsetPrinter) Publish(topic string, msgs ...*message.Message) error {
	// A synchronous Publish returns after the server acknowledged the
	// append; only then does the Router ack the input.
	if err := p.Publisher.Publish(topic, msgs...); err != nil {
		return err
	}
	for _, msg := range msgs {
		fmt.Fprintf(p.out, "durable: %s message for %s at offset %s\n",
			topic, middleware.MessageCorrelationID(msg), msg.Metadata.Get(ds.MetadataOffset))
		select {
		case p.printed <- struct{}{}:
		default: // a repeat after a redelivery: already counted
		}
	}
	return nil
}

// readResults reads the confirmations and the poison queue, as a
// downstream service would, until every order is accounted for.
func readResults(ctx context.Context, out io.Writer, baseURL string, logger watermill.LoggerAdapter, orders int) error {
	subscriber, err := ds.NewSubscriber(ds.SubscriberConfig{BaseURL: baseURL}, logger)
	if err != nil {
		return err
	}
	defer subscriber.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	results := make(chan string)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for _, topic := range []string{confirmedTopic, poisonTopic} {
		// Created up front, so that the reader need not wait for the
		// first publish to create it.
		if err := subscriber.SubscribeInitialize(topic); err != nil {
			return err
		}
		msgs, err := subscriber.Subscribe(ctx, topic)
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for msg := range msgs {
				line := fmt.Sprintf("%s: %s (correlation id %s)", topic, msg.Payload, middleware.MessageCorrelationID(msg))
				if reason := msg.Metadata.Get(middleware.ReasonForPoisonedKey); reason != "" {
					line += ", reason: " + reason
				}
				msg.Ack()
				select {
				case results <- line:
				case <-ctx.Done():
					return
				}
			}
		}()
	}

	for range orders {
		select {
		case line := <-results:
			fmt.Fprintln(out, line)
		case <-ctx.Done():
			return fmt.Errorf("waiting for the results: %w", ctx.Err())
		}
	}
	return nil
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
