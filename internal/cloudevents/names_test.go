package cloudevents

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestAttributeNamesRoundTrip(t *testing.T) {
	tests := map[string]string{
		"traceparent": "traceparent", "correlation_id": "correlationz5fid", "Name": "z4eame", "": "zz", "z": "z7a",
		"id": "z69d", "data": "z64ata", "source": "z73ource", "ce_time": "cez5ftime", "ключ": "zd0zbazd0zbbzd1z8ezd1z87",
		"a.b-c": "az2ebz2dc",
	}
	for key, name := range tests {
		assert.Equal(t, name, AttributeName(key), "%q", key)
		assert.Equal(t, key, MetadataKey(name), "%q", name)
	}
	for _, foreign := range []string{"zoo", "z", "z6", "z61", "z4E", "abc"} {
		assert.Equal(t, foreign, MetadataKey(foreign), "names this marshaler never writes are kept")
	}
}
