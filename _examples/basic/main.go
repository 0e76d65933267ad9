// Command basic publishes a few Watermill messages to a Durable Stream and
// reads the stream back with plain HTTP, as any client (a browser, curl,
// the official clients) could.
//
// It needs a Durable Streams server: pass its base URL with -server or in
// DURABLE_STREAMS_URL (streams live under <server>/v1/stream/):
//
//	go run . -server http://127.0.0.1:4437
//
// From a clone of the repository, this starts the pinned reference server
// for it:
//
//	node testserver/with-server.mjs go run ./_examples/basic
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strings"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	ds "github.com/durablestreams/watermill-durablestreams"
)

func main() {
	server := flag.String("server", os.Getenv("DURABLE_STREAMS_URL"),
		"base URL of the Durable Streams server, e.g. http://127.0.0.1:4437 (default $DURABLE_STREAMS_URL)")
	flag.Parse()
	if *server == "" {
		log.Fatal("no server: pass -server http://host:port or set DURABLE_STREAMS_URL " +
			"(from a clone of the repository: node testserver/with-server.mjs go run ./_examples/basic)")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Stdout, strings.TrimRight(*server, "/"))
	stop()
	if err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, out io.Writer, server string) error {
	// Every run gets streams of its own under this URL.
	baseURL := server + "/v1/stream/examples/basic-" + watermill.NewShortUUID()

	publisher, err := ds.NewPublisher(ds.PublisherConfig{BaseURL: baseURL}, watermill.NewStdLogger(false, false))
	if err != nil {
		return err
	}
	defer publisher.Close()

	// Publish returns once the server has acknowledged the messages.
	for i, text := range []string{"hello", "durable", "streams"} {
		msg := message.NewMessage(watermill.NewUUID(), fmt.Appendf(nil, `{"n":%d,"text":%q}`, i, text))
		msg.Metadata.Set("source", "basic-example")
		msg.SetContext(ctx)
		if err := publisher.Publish("greetings", msg); err != nil {
			return err
		}
		fmt.Fprintf(out, "published %s at offset %s\n", msg.UUID, msg.Metadata.Get(ds.MetadataOffset))
	}
	if err := publisher.Close(); err != nil {
		return err
	}

	// Read the whole stream back with a plain GET from the beginning: a
	// JSON array of the envelopes the JSONMarshaler wrote.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/greetings?offset=-1", nil)
	if err != nil {
		return err
	}
	client := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s/greetings: %s: %s", baseURL, resp.Status, body)
	}
	fmt.Fprintf(out, "GET %s/greetings?offset=-1 ->\n%s\n", baseURL, body)
	return nil
}
