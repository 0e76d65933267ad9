// Command llm-tokens shows the headline Durable Streams use case: an LLM
// answer streamed token by token into a stream of its own, and a reader
// (think: a chat UI) that loses its connection halfway and resumes exactly
// where it was, so that it shows the whole answer once.
//
// The producer publishes with the Publisher in Async mode, so that a token
// costs no round trip; the Publisher batches tokens into few requests and
// appends each batch exactly once. When the answer is complete it closes
// the stream with a final message: readers then see the end of the stream
// instead of waiting for more.
//
// The reader is a Subscriber in a consumer group whose position is kept on
// the Durable Streams server (StreamOffsetStore), so the resumed reader
// could as well run in another process.
//
// It needs a Durable Streams server: pass its base URL with -server or in
// DURABLE_STREAMS_URL (streams live under <server>/v1/stream/):
//
//	go run . -server http://127.0.0.1:4437
//
// From a clone of the repository, this starts the pinned reference server
// for it:
//
//	node testserver/with-server.mjs go run ./_examples/llm-tokens
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
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	ds "github.com/durablestreams/watermill-durablestreams"
)

const answer = "Durable Streams make token streams resumable: a reader that drops " +
	"its connection picks up exactly where it was, and every reader sees the " +
	"whole answer once, however often it reconnects."

// tokensBeforeDisconnect is how many tokens the reader shows before its
// connection drops.
const tokensBeforeDisconnect = 8

// tokenDelay paces the producer like a model generating tokens.
const tokenDelay = 5 * time.Millisecond

// Chunk is one message of a conversation stream: a token, or the final
// message that ends the answer.
type Chunk struct {
	Token        string `json:"token,omitempty"`
	Done         bool   `json:"done,omitempty"`
	FinishReason string `json:"finish_reason,omitempty"`
}

func main() {
	server := flag.String("server", os.Getenv("DURABLE_STREAMS_URL"),
		"base URL of the Durable Streams server, e.g. http://127.0.0.1:4437 (default $DURABLE_STREAMS_URL)")
	flag.Parse()
	if *server == "" {
		log.Fatal("no server: pass -server http://host:port or set DURABLE_STREAMS_URL " +
			"(from a clone of the repository: node testserver/with-server.mjs go run ./_examples/llm-tokens)")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Stdout, strings.TrimRight(*server, "/"))
	stop()
	if err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, out io.Writer, server string) error {
	logger := watermill.NopLogger{}
	baseURL := server + "/v1/stream/examples/llm"
	conversation := "conversation-" + watermill.NewShortUUID()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	produced := make(chan error, 1)
	go func() {
		err := produce(ctx, baseURL, conversation, logger)
		if err != nil {
			cancel() // the answer will never end: stop reading
		}
		produced <- err
	}()

	text, err := read(ctx, out, baseURL, conversation, logger)
	if perr := <-produced; perr != nil {
		return errors.Join(fmt.Errorf("producer: %w", perr), err)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "answer: %s\n", text)
	return nil
}

// produce streams the answer into the conversation's stream and closes it.
func produce(ctx context.Context, baseURL, conversation string, logger watermill.LoggerAdapter) error {
	asyncErrs := make(chan error, 1)
	publisher, err := ds.NewPublisher(ds.PublisherConfig{
		BaseURL: baseURL,
		// Plain JSON messages, as a browser or any other client expects:
		// {"token":"Durable "}.
		Marshaler: ds.RawJSONMarshaler{},
		// Publish returns once a token is buffered, not once it is written.
		Async: true,
		OnAsyncError: func(_, _ string, err error) {
			select {
			case asyncErrs <- err:
			default:
			}
		},
	}, logger)
	if err != nil {
		return err
	}
	defer publisher.Close()

	for _, token := range strings.SplitAfter(answer, " ") {
		if err := publisher.Publish(conversation, chunkMessage(Chunk{Token: token})); err != nil {
			return err
		}
		select {
		case <-time.After(tokenDelay):
		case err := <-asyncErrs:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// CloseStream writes what is still buffered first, then the final
	// message, and closes the stream for good.
	if _, err := publisher.CloseStream(ctx, conversation, chunkMessage(Chunk{Done: true, FinishReason: "stop"})); err != nil {
		return err
	}
	select {
	case err := <-asyncErrs:
		return err
	default:
		return publisher.Close()
	}
}

func chunkMessage(c Chunk) *message.Message {
	payload, _ := json.Marshal(c) // a struct of strings and a bool: cannot fail
	return message.NewMessage(watermill.NewUUID(), payload)
}

// read shows the answer as a chat UI would: it reads part of it, loses its
// connection, and resumes in a new session where it stopped.
func read(ctx context.Context, out io.Writer, baseURL, conversation string, logger watermill.LoggerAdapter) (string, error) {
	const group = "chat-ui"
	var text strings.Builder

	first, err := newSession(baseURL, group, logger)
	if err != nil {
		return "", err
	}
	if _, err := readSession(ctx, first, conversation, tokensBeforeDisconnect, &text); err != nil {
		return "", err
	}
	fmt.Fprintf(out, "reader: showed %d tokens, then the connection dropped: %q\n", tokensBeforeDisconnect, text.String())

	// A new session, as after a page reload: it knows nothing but the
	// consumer group, whose position is on the server.
	second, err := newSession(baseURL, group, logger)
	if err != nil {
		return "", err
	}
	pos, _, err := second.positions.Load(ctx, group, conversation)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(out, "reader: resuming after offset %s, %d message(s) into that read\n", pos.Offset, pos.Skip)
	finish, err := readSession(ctx, second, conversation, -1, &text)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(out, "reader: stream closed, finish reason %q\n", finish)
	return text.String(), nil
}

type session struct {
	subscriber *ds.Subscriber
	positions  *ds.StreamOffsetStore
}

func (s *session) close() {
	_ = s.subscriber.Close()
	_ = s.positions.Close()
}

func newSession(baseURL, group string, logger watermill.LoggerAdapter) (*session, error) {
	positions, err := ds.NewStreamOffsetStore(ds.StreamOffsetStoreConfig{BaseURL: baseURL})
	if err != nil {
		return nil, err
	}
	subscriber, err := ds.NewSubscriber(ds.SubscriberConfig{
		BaseURL:     baseURL,
		Unmarshaler: ds.RawJSONMarshaler{},
		Checkpoint:  group,
		OffsetStore: positions,
	}, logger)
	if err != nil {
		_ = positions.Close()
		return nil, err
	}
	return &session{subscriber: subscriber, positions: positions}, nil
}

// readSession appends tokens to text until the stream ends, or, when
// limit >= 0, until limit tokens were read: then it drops the connection
// while it holds one more token it has not acknowledged, which the next
// session therefore gets again. It returns the finish reason.
func readSession(ctx context.Context, s *session, conversation string, limit int, text *strings.Builder) (string, error) {
	defer s.close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	msgs, err := s.subscriber.Subscribe(ctx, conversation)
	if err != nil {
		return "", err
	}
	finish, read := "", 0
	for msg := range msgs {
		if read == limit {
			cancel() // the connection drops; msg was never acked
			continue // drain until the subscription has ended
		}
		var chunk Chunk
		if err := json.Unmarshal(msg.Payload, &chunk); err != nil {
			return "", fmt.Errorf("decode chunk: %w", err)
		}
		text.WriteString(chunk.Token)
		if chunk.Done {
			finish = chunk.FinishReason
		}
		read++
		msg.Ack()
	}
	if limit < 0 && finish == "" {
		// The channel closes at the end of the stream, or on ctx.
		return "", fmt.Errorf("the stream ended without a final message: %w", ctx.Err())
	}
	return finish, nil
}
