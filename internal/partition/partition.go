// Package partition spreads a topic over several streams by key: the key
// to partition function, the names of a topic's streams, and the record
// of its partition count on the server. The Publisher and the consumer
// groups both use it; neither reaches into the other.
package partition

import (
	"hash/fnv"
	"strconv"
)

// Max bounds the partitions of one topic.
const Max = 1024

// Of maps a key to one of n partitions: FNV-1a (32 bit) of the key's
// bytes, modulo n. It is stable across processes, versions and languages
// (FNV-1a is specified byte for byte), so every publisher puts a key in
// the same partition. The empty key (a message without one) goes to
// partition 0, the stable default.
func Of(key string, n int) int {
	if n <= 1 || key == "" {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return int(h.Sum32() % uint32(n))
}

// StreamName is the stream of partition i of topic: the topic itself when
// it has one partition (so a topic without partitions is unchanged), else
// "<topic>.p<i>".
func StreamName(topic string, i, n int) string {
	if n <= 1 {
		return topic
	}
	return topic + ".p" + strconv.Itoa(i)
}

// StreamNames lists the streams of a topic of n partitions.
func StreamNames(topic string, n int) []string {
	out := make([]string, max(n, 1))
	for i := range out {
		out[i] = StreamName(topic, i, n)
	}
	return out
}

// RecordName is the stream that records a topic's partition count:
// "<topic>.partitions", next to the partitions' streams.
func RecordName(topic string) string { return topic + ".partitions" }
