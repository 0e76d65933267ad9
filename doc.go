// Package durablestreams is a Watermill Pub/Sub for Durable Streams, the
// HTTP protocol for durable, append-only, resumable streams.
//
// Each Watermill topic is a stream URL under a base URL. The Publisher
// appends through one idempotent producer per topic (producer id, epoch
// and sequence number on every request), so retries after network errors,
// timeouts, 429 and 5xx never write a message twice; by default Publish
// returns once the server has acknowledged every message. The Subscriber
// reads a stream from the beginning, the tail or a consumer group's stored
// position, catches up and then tails it live by long-poll or SSE,
// delivering one message at a time with Ack and Nack. How long and how
// often a failed request is tried again is a retry.Policy
// (ClientConfig.RetryPolicy).
//
// Messages are encoded by a Marshaler: JSONMarshaler (the default, an
// envelope keeping UUID, metadata and payload in a JSON-mode stream),
// RawJSONMarshaler (the payload alone), CloudEventsMarshaler (CloudEvents
// in structured JSON mode), FramedMarshaler (binary frames in a byte-mode
// stream) and LinesMarshaler (one line per message).
//
// Errors are typed: test them with errors.Is against the Err* sentinels,
// and with errors.As for *StaleEpochError, *HTTPError, *InvalidTopicError,
// *MarshalError and *UnmarshalError.
package durablestreams
