package durablestreams_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	ds "github.com/durablestreams/watermill-durablestreams"
)

const configTestURL = "http://127.0.0.1:1/v1/stream"

// TestConfigRefusesNilPointerMarshalers: a typed nil pointer as Marshaler
// or Unmarshaler is ErrInvalidConfig at Validate and at construction, not
// a panic.
func TestConfigRefusesNilPointerMarshalers(t *testing.T) {
	for _, m := range []ds.Marshaler{
		(*ds.JSONMarshaler)(nil), (*ds.RawJSONMarshaler)(nil), (*ds.CloudEventsMarshaler)(nil),
		(*ds.FramedMarshaler)(nil), (*ds.LinesMarshaler)(nil),
	} {
		pc := ds.PublisherConfig{BaseURL: configTestURL, Marshaler: m}
		var err error
		require.NotPanics(t, func() { err = pc.Validate() }, "%T", m)
		require.ErrorIs(t, err, ds.ErrInvalidConfig, "%T", m)
		assert.ErrorContains(t, err, "Marshaler is a nil pointer", "%T", m)
		require.NotPanics(t, func() { _, err = ds.NewPublisher(pc, nil) }, "%T", m)
		require.ErrorIs(t, err, ds.ErrInvalidConfig, "%T", m)

		u := m.(ds.Unmarshaler)
		sc := ds.SubscriberConfig{BaseURL: configTestURL, Unmarshaler: u}
		require.NotPanics(t, func() { err = sc.Validate() }, "%T", m)
		require.ErrorIs(t, err, ds.ErrInvalidConfig, "%T", m)
		assert.ErrorContains(t, err, "Unmarshaler is a nil pointer", "%T", m)
		require.NotPanics(t, func() { _, err = ds.NewSubscriber(sc, nil) }, "%T", m)
		require.ErrorIs(t, err, ds.ErrInvalidConfig, "%T", m)
	}
	// A pointer that is not nil is a marshaler like its value.
	require.NoError(t, ds.PublisherConfig{BaseURL: configTestURL, Marshaler: &ds.JSONMarshaler{}}.Validate())
	require.NoError(t, ds.SubscriberConfig{BaseURL: configTestURL, Unmarshaler: &ds.JSONMarshaler{}, ContentType: "application/json"}.Validate())
}

// TestConfigRefusesByteMarshalersWithJSONContentType: FramedMarshaler and
// LinesMarshaler write byte-mode streams; a JSON StreamContentType, which
// their docs forbid, is ErrInvalidConfig at Validate rather than an
// ErrInvalidJSON at the first Publish.
func TestConfigRefusesByteMarshalersWithJSONContentType(t *testing.T) {
	for _, m := range []ds.Marshaler{
		ds.FramedMarshaler{StreamContentType: "application/json"},
		&ds.FramedMarshaler{StreamContentType: "Application/JSON; charset=utf-8"},
		ds.LinesMarshaler{StreamContentType: "application/vnd.x+json"},
		&ds.LinesMarshaler{StreamContentType: "application/json"},
	} {
		err := ds.PublisherConfig{BaseURL: configTestURL, Marshaler: m}.Validate()
		require.ErrorIs(t, err, ds.ErrInvalidConfig, "%#v", m)
		assert.ErrorContains(t, err, "JSON", "%#v", m)
	}
	for _, m := range []ds.Marshaler{
		ds.FramedMarshaler{}, &ds.LinesMarshaler{}, ds.LinesMarshaler{StreamContentType: "text/csv"},
		ds.FramedMarshaler{StreamContentType: "application/x-protobuf"},
	} {
		require.NoError(t, ds.PublisherConfig{BaseURL: configTestURL, Marshaler: m}.Validate(), "%#v", m)
	}
}
