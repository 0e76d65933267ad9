// Command workers runs three workers in one consumer group over a topic of
// six partitions: each job goes to one worker, jobs with one key stay in
// order on one worker, and the partitions are shared among the workers.
//
// It needs a Durable Streams server: pass its base URL with -server or in
// DURABLE_STREAMS_URL (streams live under <server>/v1/stream/):
//
//	go run . -server http://127.0.0.1:4437
//
// From a clone of the repository, this starts the pinned reference server
// for it:
//
//	node testserver/with-server.mjs go run ./_examples/workers
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"strings"
	"sync"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	ds "github.com/durablestreams/watermill-durablestreams"
)

const (
	jobs       = 30
	partitions = 6
)

func main() {
	server := flag.String("server", os.Getenv("DURABLE_STREAMS_URL"),
		"base URL of the Durable Streams server, e.g. http://127.0.0.1:4437 (default $DURABLE_STREAMS_URL)")
	flag.Parse()
	if *server == "" {
		log.Fatal("no server: pass -server http://host:port or set DURABLE_STREAMS_URL " +
			"(from a clone of the repository: node testserver/with-server.mjs go run ./_examples/workers)")
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
	// Every run gets streams of its own under this URL.
	baseURL := server + "/v1/stream/examples/workers-" + watermill.NewShortUUID()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// done counts each job once: delivery is at-least-once, so a job whose
	// partition moved to another worker while in hand may come again.
	var mu sync.Mutex
	seen := map[string]bool{}
	allDone := make(chan struct{})
	var workers sync.WaitGroup
	for w := 1; w <= 3; w++ {
		// No OffsetStore: the group shares the work among its members,
		// and keeps its positions on the server.
		sub, err := ds.NewSubscriber(ds.SubscriberConfig{
			BaseURL:       baseURL,
			ConsumerGroup: "workers",
			MemberID:      fmt.Sprintf("worker-%d", w),
			Partitions:    partitions,
		}, nil)
		if err != nil {
			return err
		}
		defer sub.Close()
		msgs, err := sub.Subscribe(ctx, "jobs")
		if err != nil {
			return err
		}
		workers.Add(1)
		go func() {
			defer workers.Done()
			for msg := range msgs {
				mu.Lock()
				fmt.Fprintf(out, "worker-%d handled %s (key %s)\n", w, msg.Payload, msg.Metadata.Get("partition_key"))
				if !seen[msg.UUID] {
					seen[msg.UUID] = true
					if len(seen) == jobs {
						close(allDone)
					}
				}
				mu.Unlock()
				msg.Ack()
			}
		}()
	}

	publisher, err := ds.NewPublisher(ds.PublisherConfig{BaseURL: baseURL, Partitions: partitions}, nil)
	if err != nil {
		return err
	}
	defer publisher.Close()
	for i := range jobs {
		msg := message.NewMessage(watermill.NewUUID(), fmt.Appendf(nil, `{"job":%d}`, i))
		// Jobs of one customer go to one partition, in order.
		msg.Metadata.Set("partition_key", fmt.Sprintf("customer-%d", i%5))
		msg.SetContext(ctx)
		if err := publisher.Publish("jobs", msg); err != nil {
			return err
		}
	}

	select {
	case <-allDone:
		fmt.Fprintf(out, "all %d jobs handled\n", jobs)
	case <-ctx.Done():
		return ctx.Err()
	}
	cancel() // each worker hands its partitions over and stops
	workers.Wait()
	return nil
}
