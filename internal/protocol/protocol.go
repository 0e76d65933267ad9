// Package protocol holds what every part of the library shares about the
// Durable Streams HTTP protocol: header names, content-type rules, error
// sentinels, retry policy and the stream-creation request.
package protocol

import (
	"mime"
	"strings"
)

// Header names, as PROTOCOL.md spells them. Go canonicalises them on the wire.
const (
	HeaderNextOffset       = "Stream-Next-Offset"
	HeaderCursor           = "Stream-Cursor"
	HeaderUpToDate         = "Stream-Up-To-Date"
	HeaderClosed           = "Stream-Closed"
	HeaderTTL              = "Stream-TTL"
	HeaderExpiresAt        = "Stream-Expires-At"
	HeaderProducerID       = "Producer-Id"
	HeaderProducerEpoch    = "Producer-Epoch"
	HeaderProducerSeq      = "Producer-Seq"
	HeaderExpectedSeq      = "Producer-Expected-Seq"
	HeaderReceivedSeq      = "Producer-Received-Seq"
	HeaderSSEDataEncoding  = "Stream-Sse-Data-Encoding"
	HeaderRetryAfter       = "Retry-After"
	ContentTypeJSON        = "application/json"
	ContentTypeOctetStream = "application/octet-stream"
)

// MaxInteger is the largest epoch or sequence number the protocol allows
// (2^53-1, so that JavaScript peers can hold it exactly).
const MaxInteger = 1<<53 - 1

// IsJSON reports whether a stream of this content type is in JSON mode:
// the media type is application/json, ignoring parameters and case.
func IsJSON(contentType string) bool {
	return MediaType(contentType) == ContentTypeJSON
}

// MediaType returns the lower-cased media type without parameters.
func MediaType(contentType string) string {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		mt, _, _ = strings.Cut(contentType, ";")
	}
	return strings.ToLower(strings.TrimSpace(mt))
}

// SameContentType compares two content types the way the server does for
// appends: by media type, ignoring parameters and case.
func SameContentType(a, b string) bool { return MediaType(a) == MediaType(b) }
