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
