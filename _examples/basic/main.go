// Command basic publishes a few Watermill messages to a Durable Stream and
// reads the stream back with plain HTTP, as any client (a browser, curl,
// the official clients) could.
//
// Run it from the repository root:
//
//	npm ci --prefix testserver && go run ./_examples/basic
//
// It starts the bundled reference server unless DURABLE_STREAMS_URL names
// one, e.g. DURABLE_STREAMS_URL=http://127.0.0.1:4437 (see `make up`).
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	ds "github.com/durablestreams/watermill-durablestreams"
	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, out io.Writer) error {
	server := os.Getenv("DURABLE_STREAMS_URL")
	if server == "" {
		srv, err := dstest.Start(dstest.Options{})
		if err != nil {
			return err
		}
		defer srv.Stop()
		server = srv.URL
	}
	baseURL := server + "/v1/stream/examples-" + time.Now().Format("20060102-150405.000")

	publisher, err := ds.NewPublisher(ds.PublisherConfig{BaseURL: baseURL}, watermill.NewStdLogger(false, false))
	if err != nil {
		return err
	}

	// Publish returns once the server has acknowledged the messages.
	for i, text := range []string{"hello", "durable", "streams"} {
		msg := message.NewMessage(watermill.NewUUID(), []byte(fmt.Sprintf(`{"n":%d,"text":%q}`, i, text)))
		msg.Metadata.Set("source", "basic-example")
		if err := publisher.Publish("greetings", msg); err != nil {
			return err
		}
		fmt.Fprintf(out, "published %s at offset %s\n", msg.UUID, msg.Metadata.Get(ds.MetadataOffset))
	}
	if err := publisher.Close(); err != nil {
		return err
	}

	// Read the whole stream back with a plain GET from the beginning.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/greetings?offset=-1", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "GET %s/greetings?offset=-1 ->\n%s\n", baseURL, body)
	return nil
}
