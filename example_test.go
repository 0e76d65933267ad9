package durablestreams_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	durablestreams "github.com/durablestreams/watermill-durablestreams"
	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

// This example publishes to a stream, closes the stream and reads it back
// to its end with a Subscriber.
func ExamplePublisher() {
	server, stop := exampleServer() // for example http://127.0.0.1:4437
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Each topic is a stream under BaseURL: here …/orders.
	baseURL := server + "/v1/stream/examples/godoc-" + watermill.NewShortUUID()

	publisher, err := durablestreams.NewPublisher(durablestreams.PublisherConfig{BaseURL: baseURL}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer publisher.Close()

	msg := message.NewMessage(watermill.NewUUID(), []byte(`{"order":7}`))
	msg.Metadata.Set("name", "OrderPlaced")
	// Publish returns once the server has acknowledged the message, and
	// sets its offset in the stream.
	if err := publisher.Publish("orders", msg); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("acknowledged:", msg.Metadata.Get(durablestreams.MetadataOffset) != "")
	// Closing the stream lets readers see its end.
	if _, err := publisher.CloseStream(ctx, "orders", nil); err != nil {
		fmt.Println(err)
		return
	}

	subscriber, err := durablestreams.NewSubscriber(durablestreams.SubscriberConfig{BaseURL: baseURL}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer subscriber.Close()
	msgs, err := subscriber.Subscribe(ctx, "orders")
	if err != nil {
		fmt.Println(err)
		return
	}
	// The channel closes at the end of the closed stream.
	for msg := range msgs {
		fmt.Println(msg.Metadata.Get("name"), string(msg.Payload))
		msg.Ack()
	}
	// Output:
	// acknowledged: true
	// OrderPlaced {"order":7}
}

// exampleServer returns the server named by DURABLE_STREAMS_URL, or starts
// the bundled reference server.
func exampleServer() (url string, stop func()) {
	if url := os.Getenv(dstest.EnvURL); url != "" {
		return url, func() {}
	}
	srv, err := dstest.Start(dstest.Options{})
	if err != nil {
		panic(err)
	}
	return srv.URL, func() { _ = srv.Stop() }
}

// This example writes one invoice per order exactly once: the handler
// reads orders as a consumer group and returns an invoice, and the
// ExactlyOnce middleware numbers it by its order, so that an order
// handled again (after a crash, a pause or a rebalance) finds its invoice
// written instead of writing a second one. Orders and invoices have as
// many partitions, keyed alike.
func ExampleExactlyOnce() {
	server, stop := exampleServer()
	defer stop()
	baseURL := server + "/v1/stream/examples/godoc-" + watermill.NewShortUUID()
	const partitions = 2

	publisher, err := durablestreams.NewPublisher(durablestreams.PublisherConfig{BaseURL: baseURL, Partitions: partitions}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer publisher.Close()
	subscriber, err := durablestreams.NewSubscriber(durablestreams.SubscriberConfig{
		BaseURL: baseURL, ConsumerGroup: "billing", Partitions: partitions,
	}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	router, err := message.NewRouter(message.RouterConfig{}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	router.AddMiddleware(durablestreams.ExactlyOnce) // innermost: add it last
	invoiced := make(chan string, 3)
	router.AddHandler("billing", "orders", subscriber, "invoices", publisher,
		func(order *message.Message) ([]*message.Message, error) {
			invoice := message.NewMessage(watermill.NewUUID(), []byte(`{"for":"`+order.UUID+`"}`))
			invoiced <- order.UUID
			return []*message.Message{invoice}, nil
		})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go func() { _ = router.Run(ctx) }()
	defer router.Close()
	<-router.Running()

	for _, customer := range []string{"ada", "grace", "linus"} {
		order := message.NewMessage(watermill.NewUUID(), []byte(`{}`))
		order.Metadata.Set("partition_key", customer)
		if err := publisher.Publish("orders", order); err != nil {
			fmt.Println(err)
			return
		}
	}
	for range 3 {
		select {
		case <-invoiced:
		case <-ctx.Done():
			fmt.Println("not every order was handled in time")
			return
		}
	}
	fmt.Println("3 orders handled")
	// Output: 3 orders handled
}
