// Command browser publishes events with Watermill and serves a web page
// that tails the same stream live, straight from the Durable Streams
// server: the page (index.html, embedded) opens an EventSource on the
// stream URL with live=sse, and the reference server allows any origin.
//
// It needs a Durable Streams server: pass its base URL with -server or in
// DURABLE_STREAMS_URL (streams live under <server>/v1/stream/), then open
// the URL it prints; publishing starts once the page is open:
//
//	go run . -server http://127.0.0.1:4437
//
// From a clone of the repository, this starts the pinned reference server
// for it:
//
//	node testserver/with-server.mjs go run ./_examples/browser
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"html/template"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	ds "github.com/durablestreams/watermill-durablestreams"
)

//go:embed index.html
var indexHTML string

var page = template.Must(template.New("index.html").Parse(indexHTML))

// demo says what to publish.
type demo struct {
	events   int
	interval time.Duration
}

func main() {
	server := flag.String("server", os.Getenv("DURABLE_STREAMS_URL"),
		"base URL of the Durable Streams server, e.g. http://127.0.0.1:4437 (default $DURABLE_STREAMS_URL)")
	addr := flag.String("addr", "127.0.0.1:8080", "where to serve the page")
	events := flag.Int("events", 30, "how many events to publish")
	interval := flag.Duration("interval", time.Second, "time between events")
	flag.Parse()
	if *server == "" {
		log.Fatal("no server: pass -server http://host:port or set DURABLE_STREAMS_URL " +
			"(from a clone of the repository: node testserver/with-server.mjs go run ./_examples/browser)")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	ln, err := net.Listen("tcp", *addr)
	if err == nil {
		err = run(ctx, os.Stdout, strings.TrimRight(*server, "/"), ln, demo{events: *events, interval: *interval})
	}
	stop()
	if err != nil {
		log.Fatal(err)
	}
}

// run serves the page on ln until ctx ends, and publishes the demo's
// events once the page was first requested. It closes ln.
func run(ctx context.Context, out io.Writer, server string, ln net.Listener, d demo) error {
	baseURL := server + "/v1/stream/examples/browser"
	topic := "events-" + watermill.NewShortUUID()
	streamURL := baseURL + "/" + topic

	opened := make(chan struct{})
	var openOnce sync.Once
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		openOnce.Do(func() { close(opened) })
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := page.Execute(w, struct{ StreamURL string }{streamURL}); err != nil {
			log.Printf("render page: %v", err)
		}
	})
	httpServer := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- httpServer.Serve(ln) }()
	defer func() {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = httpServer.Shutdown(shutdownCtx)
		<-served
	}()

	fmt.Fprintf(out, "open http://%s/ in a browser; it tails %s\n", ln.Addr(), streamURL)
	select {
	case <-opened:
	case <-ctx.Done():
		return nil
	case err := <-served:
		return err
	}
	if err := publish(ctx, out, baseURL, topic, d); err != nil {
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	}
	fmt.Fprintln(out, "stream closed; reload the page to see it replayed. Ctrl-C to stop.")
	select {
	case <-ctx.Done():
		return nil
	case err := <-served:
		return err
	}
}

// publish appends the demo's events, one per interval, and closes the
// stream with a last message.
func publish(ctx context.Context, out io.Writer, baseURL, topic string, d demo) error {
	publisher, err := ds.NewPublisher(ds.PublisherConfig{BaseURL: baseURL}, nil)
	if err != nil {
		return err
	}
	defer publisher.Close()

	ticker := time.NewTicker(d.interval)
	defer ticker.Stop()
	for n := 1; n <= d.events; n++ {
		msg := message.NewMessage(watermill.NewUUID(), fmt.Appendf(nil, `{"n":%d,"text":"event %d of %d"}`, n, n, d.events))
		msg.SetContext(ctx)
		if err := publisher.Publish(topic, msg); err != nil {
			return err
		}
		fmt.Fprintf(out, "published event %d at offset %s\n", n, msg.Metadata.Get(ds.MetadataOffset))
		if n == d.events {
			break
		}
		select {
		case <-ticker.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	final := message.NewMessage(watermill.NewUUID(), []byte(`{"text":"that was the last event"}`))
	if _, err := publisher.CloseStream(ctx, topic, final); err != nil {
		return err
	}
	return publisher.Close()
}
