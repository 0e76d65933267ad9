package durablestreams_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	ds "github.com/durablestreams/watermill-durablestreams"
)

// TestBaseURLsThatCannotWorkAreInvalidConfig: a BaseURL whose streams no
// reader configured as documented would see, or that could never reach a
// server, is ErrInvalidConfig at NewPublisher, NewSubscriber and
// NewStreamOffsetStore, naming the field and why, without credentials.
// Before, each was accepted: a query or fragment sent every topic into
// one stream, a trailing space wrote to ".../stream%20/<topic>", and a
// bad port was retried like an outage.
func TestBaseURLsThatCannotWorkAreInvalidConfig(t *testing.T) {
	for _, c := range []struct{ url, why string }{
		{"http://127.0.0.1:4437/v1/stream?tenant=a", "has a query"},
		{"http://127.0.0.1:4437/v1/stream?", "has a query"},
		{"http://127.0.0.1:4437/v1/stream#orders", "has a fragment"},
		{"http://127.0.0.1:4437/v1/stream#", "has a fragment"},
		{"http://127.0.0.1:4437/v1/stream ", "contains whitespace"},
		{" http://127.0.0.1:4437/v1/stream", "contains whitespace"},
		{"http://127.0.0.1:4437/v1/str eam", "contains whitespace"},
		{"http://127.0.0.1:4437/v1/stream\n", "contains whitespace"},
		{"http://127.0.0.1:99999/v1/stream", "has port 99999, outside 1-65535"},
		{"http://127.0.0.1:0/v1/stream", "has port 0, outside 1-65535"},
		{"http://127.0.0.1:/v1/stream", "has an empty port"},
		{"http://user:secret@127.0.0.1:http/v1/stream", "is not a URL"},
		{"ftp://127.0.0.1/v1/stream", "must start with http:// or https://"},
		{"127.0.0.1:4437/v1/stream", "must start with http:// or https://"},
		{"localhost/v1/stream", "must start with http:// or https://"},
		{"http:///v1/stream", "has no host"},
	} {
		t.Run(c.url, func(t *testing.T) {
			check := func(what string, err error) {
				t.Helper()
				require.ErrorIs(t, err, ds.ErrInvalidConfig, what)
				require.Contains(t, err.Error(), "BaseURL", what)
				require.Contains(t, err.Error(), c.why, what)
				require.NotContains(t, err.Error(), "secret", what)
			}
			_, err := ds.NewPublisher(ds.PublisherConfig{BaseURL: c.url}, nil)
			check("NewPublisher", err)
			_, err = ds.NewSubscriber(ds.SubscriberConfig{BaseURL: c.url}, nil)
			check("NewSubscriber", err)
			_, err = ds.NewSubscriber(ds.SubscriberConfig{BaseURL: c.url, ConsumerGroup: "g"}, nil)
			check("NewSubscriber in a sharing group", err)
			_, err = ds.NewStreamOffsetStore(ds.StreamOffsetStoreConfig{BaseURL: c.url})
			check("NewStreamOffsetStore", err)
		})
	}
}

// TestBaseURLsThatCanWorkAreAccepted: the checks above refuse nothing a
// server could serve.
func TestBaseURLsThatCanWorkAreAccepted(t *testing.T) {
	for _, u := range []string{
		"http://127.0.0.1:4437/v1/stream",
		"http://127.0.0.1:4437/v1/stream/",
		"https://streams.example.com/v1/stream/tenant-a",
		"http://[::1]:4437/v1/stream",
		"http://user:secret@127.0.0.1:65535/v1/stream",
		"HTTP://127.0.0.1/v1/stream",
	} {
		pub, err := ds.NewPublisher(ds.PublisherConfig{BaseURL: u}, nil)
		require.NoError(t, err, u)
		require.NoError(t, pub.Close())
		sub, err := ds.NewSubscriber(ds.SubscriberConfig{BaseURL: u}, nil)
		require.NoError(t, err, u)
		require.NoError(t, sub.Close())
	}
}
