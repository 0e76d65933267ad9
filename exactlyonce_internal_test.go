package durablestreams

import (
	"context"
	"errors"
	"github.com/durablestreams/watermill-durablestreams/internal/defaults"
	"sync/atomic"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
	"github.com/durablestreams/watermill-durablestreams/internal/exactlyonce"
	"github.com/durablestreams/watermill-durablestreams/internal/partition"
)

// fakeLease stands for a group lease: an epoch and a validity the test sets.
type fakeLease struct {
	epoch   int64
	invalid atomic.Bool
}

func (l *fakeLease) Epoch() int64 { return l.epoch }
func (l *fakeLease) Holds() bool  { return !l.invalid.Load() }

// eoOutputs builds the outputs of input ordinal of a source, as the
// ExactlyOnce middleware hands them to Publish.
func eoOutputs(src *eoSource, ordinal int64, payloads ...string) []*message.Message {
	ctx := src.withTxn(context.Background(), ordinal, "input")
	exactlyonce.TxnOf(ctx).Armed.Store(true)
	msgs := make([]*message.Message, len(payloads))
	for i, p := range payloads {
		msgs[i] = message.NewMessage(watermill.NewUUID(), []byte(p))
		msgs[i].SetContext(ctx)
	}
	return msgs
}

// otherProcess forgets the writers of this process, as a new process
// starts without them.
func otherProcess() {
	exactlyonce.ForgetWriters()
}

func eoPublisher(t *testing.T, base string, partitions int) *Publisher {
	t.Helper()
	pub, err := NewPublisher(PublisherConfig{BaseURL: base, Partitions: partitions}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, pub.Close()) })
	return pub
}

func partitionOf(msg *message.Message) int {
	return partition.Of(msg.Metadata.Get(defaults.PartitionKey), 8)
}

func TestExactlyOnceRedeliveryIsAnsweredAlreadyWritten(t *testing.T) {
	base := dstest.StreamURL(t)
	pub := eoPublisher(t, base, 0)
	lease := &fakeLease{epoch: 1}
	src := &eoSource{Group: "g", Topic: "in", Stream: "in", Parts: 1, Lease: lease}
	for ord := range int64(3) {
		require.NoError(t, pub.Publish("out", eoOutputs(src, ord, `{"n":1}`, `{"n":2}`)...))
	}
	// Input 1 again (a redelivery after a crash before its ack): no second copy.
	require.NoError(t, pub.Publish("out", eoOutputs(src, 1, `{"n":1}`, `{"n":2}`)...))
	// A fresh Publisher (a new process) at a newer epoch, redelivering 2.
	otherProcess()
	pub2 := eoPublisher(t, base, 0)
	src2 := *src
	src2.Lease = &fakeLease{epoch: 2}
	require.NoError(t, pub2.Publish("out", eoOutputs(&src2, 2, `{"n":1}`, `{"n":2}`)...))
	require.NoError(t, pub2.Publish("out", eoOutputs(&src2, 3, `{"n":1}`)...))
	assert.Len(t, dstest.ReadJSON(t, base+"/out"), 7)
}

func TestExactlyOnceFormerOwnerIsFenced(t *testing.T) {
	base := dstest.StreamURL(t)
	old := &eoSource{Group: "g", Topic: "in", Stream: "in", Parts: 1, Lease: &fakeLease{epoch: 1}}
	oldPub := eoPublisher(t, base, 0)
	require.NoError(t, oldPub.Publish("out", eoOutputs(old, 0, `{}`)...))
	// A newer owner writes input 1; the former owner, resumed, tries input 2.
	newer := *old
	newer.Lease = &fakeLease{epoch: 2}
	otherProcess()
	require.NoError(t, eoPublisher(t, base, 0).Publish("out", eoOutputs(&newer, 1, `{}`)...))
	otherProcess()
	err := oldPub.Publish("out", eoOutputs(old, 2, `{}`)...)
	require.ErrorIs(t, err, ErrFenced)
	var stale *StaleEpochError
	require.ErrorAs(t, err, &stale)
	assert.Equal(t, int64(2), stale.ServerEpoch)
	// A lease that no longer holds locally writes nothing.
	l := newer.Lease.(*fakeLease)
	l.invalid.Store(true)
	require.ErrorIs(t, eoPublisher(t, base, 0).Publish("out", eoOutputs(&newer, 3, `{}`)...), ErrFenced)
	assert.Len(t, dstest.ReadJSON(t, base+"/out"), 2)
}

func TestExactlyOnceNotCoPartitionedIsRefused(t *testing.T) {
	base := dstest.StreamURL(t)
	src := &eoSource{Group: "g", Topic: "in", Stream: "in.p3", Part: 3, Parts: 8, Lease: &fakeLease{epoch: 1}}
	err := eoPublisher(t, base, 4).Publish("out4", eoOutputs(src, 0, `{}`)...)
	require.ErrorIs(t, err, ErrNotCoPartitioned)
	pub := eoPublisher(t, base, 8)
	msgs := eoOutputs(src, 0, `{}`)
	for i := 0; i == 0 || partitionOf(msgs[0]) == 3; i++ {
		msgs[0].Metadata.Set(defaults.PartitionKey, "k"+string(rune('a'+i)))
	}
	require.ErrorIs(t, pub.Publish("out", msgs...), ErrNotCoPartitioned)
	// No key: the output follows its input.
	require.NoError(t, pub.Publish("out", eoOutputs(src, 0, `{}`)...))
	assert.Len(t, dstest.ReadJSON(t, base+"/out.p3"), 1)
}

func TestExactlyOnceSecondWriterIsRefused(t *testing.T) {
	base := dstest.StreamURL(t)
	a := &eoSource{Group: "g1", Topic: "in", Stream: "in", Parts: 1, Lease: &fakeLease{epoch: 1}}
	b := &eoSource{Group: "g2", Topic: "in", Stream: "in", Parts: 1, Lease: &fakeLease{epoch: 1}}
	require.NoError(t, eoPublisher(t, base, 0).Publish("out", eoOutputs(a, 0, `{}`)...))
	err := eoPublisher(t, base, 0).Publish("out", eoOutputs(b, 5, `{}`)...)
	require.ErrorIs(t, err, ErrSecondWriter)
	// The first writer, restarted (at a newer epoch), is still welcome.
	otherProcess()
	a.Lease = &fakeLease{epoch: 2}
	require.NoError(t, eoPublisher(t, base, 0).Publish("out", eoOutputs(a, 1, `{}`)...))
	assert.Len(t, dstest.ReadJSON(t, base+"/out"), 2)
}

func TestExactlyOnceNeedsAGroupInput(t *testing.T) {
	h := ExactlyOnce(func(*message.Message) ([]*message.Message, error) { return nil, nil })
	_, err := h(message.NewMessage("x", nil))
	require.ErrorIs(t, err, ErrNotExactlyOnce)
}

// An input whose outputs go to two topics, and whose first delivery wrote
// only the first before it failed: the redelivery writes the second and
// answers the first "already written".
func TestExactlyOncePartialOutputsAreCompletedOnRedelivery(t *testing.T) {
	base := dstest.StreamURL(t)
	pub := eoPublisher(t, base, 0)
	src := &eoSource{Group: "g", Topic: "in", Stream: "in", Parts: 1, Lease: &fakeLease{epoch: 1}}
	first := eoOutputs(src, 0, `{"to":"a"}`)
	require.NoError(t, pub.Publish("a", first...))
	// The member dies here; the next owner (a newer epoch, another
	// process) redelivers the input.
	otherProcess()
	src2 := *src
	src2.Lease = &fakeLease{epoch: 2}
	again := eoOutputs(&src2, 0, `{"to":"a"}`, `{"to":"b"}`)
	pub2 := eoPublisher(t, base, 0)
	require.NoError(t, pub2.Publish("a", again[0]))
	require.NoError(t, pub2.Publish("b", again[1]))
	assert.Len(t, dstest.ReadJSON(t, base+"/a"), 1)
	assert.Len(t, dstest.ReadJSON(t, base+"/b"), 1)
}

// Two Publishers of one process writing for the same lease (a Router's and
// an EventBus's) share the writer: the second one's outputs are not taken
// for duplicates of the first one's.
func TestExactlyOnceTwoPublishersOfOneProcessShareTheWriter(t *testing.T) {
	base := dstest.StreamURL(t)
	src := &eoSource{Group: "g", Topic: "in", Stream: "in", Parts: 1, Lease: &fakeLease{epoch: 1}}
	require.NoError(t, eoPublisher(t, base, 0).Publish("out", eoOutputs(src, 0, `{}`)...))
	require.NoError(t, eoPublisher(t, base, 0).Publish("out", eoOutputs(src, 1, `{}`)...))
	assert.Len(t, dstest.ReadJSON(t, base+"/out"), 2)
}

// A writer whose Producer-Seq is behind the server's for its epoch (its
// state was lost while the lease held) is answered 204 for a request that
// wrote nothing: it catches up instead of dropping the outputs.
func TestExactlyOnceWriterBehindTheServerCatchesUp(t *testing.T) {
	base := dstest.StreamURL(t)
	src := &eoSource{Group: "g", Topic: "in", Stream: "in", Parts: 1, Lease: &fakeLease{epoch: 1}}
	require.NoError(t, eoPublisher(t, base, 0).Publish("out", eoOutputs(src, 0, `{}`)...))
	require.NoError(t, eoPublisher(t, base, 0).Publish("out", eoOutputs(src, 1, `{}`)...))
	otherProcess()
	require.NoError(t, eoPublisher(t, base, 0).Publish("out", eoOutputs(src, 2, `{}`)...))
	assert.Len(t, dstest.ReadJSON(t, base+"/out"), 3)
}

// The input itself published again during its handler (a PoisonQueue) is
// no output: it is published as usual, wherever its key says.
func TestExactlyOnceInputRepublishedIsNoOutput(t *testing.T) {
	base := dstest.StreamURL(t)
	src := &eoSource{Group: "g", Topic: "in", Stream: "in.p3", Part: 3, Parts: 8, Lease: &fakeLease{epoch: 1}}
	msgs := eoOutputs(src, 0, `{}`)
	msgs[0].UUID = "input"
	require.NoError(t, eoPublisher(t, base, 0).Publish("poison", msgs...))
	assert.Len(t, dstest.ReadJSON(t, base+"/poison"), 1)
}

// TestExactlyOnceEachRetryOfTheHandlerIsNumberedFromZero: a handler that
// publishes an event and then fails is run again by a Retry middleware
// outside ExactlyOnce (Watermill's usual order: Retry, then ExactlyOnce
// last). Each run is an attempt of its own, numbered from 0, so the
// event the failed run already wrote is answered "already written": one
// event, not one per run.
func TestExactlyOnceEachRetryOfTheHandlerIsNumberedFromZero(t *testing.T) {
	base := dstest.StreamURL(t)
	pub := eoPublisher(t, base, 0)
	src := &eoSource{Group: "g", Topic: "in", Stream: "in", Parts: 1, Lease: &fakeLease{epoch: 1}}
	in := message.NewMessage(watermill.NewUUID(), []byte(`{}`))
	in.SetContext(src.withTxn(context.Background(), 0, in.UUID))
	runs := 0
	handler := func(msg *message.Message) ([]*message.Message, error) {
		runs++
		ev := message.NewMessage(watermill.NewUUID(), []byte(`{"event":1}`))
		ev.SetContext(msg.Context())
		if err := pub.Publish("events", ev); err != nil {
			return nil, err
		}
		if runs < 3 {
			return nil, errors.New("a later step failed")
		}
		return nil, nil
	}
	retry := middleware.Retry{MaxRetries: 2}.Middleware
	_, err := retry(ExactlyOnce(handler))(in)
	require.NoError(t, err)
	require.Equal(t, 3, runs)
	assert.Len(t, dstest.ReadJSON(t, base+"/events"), 1, "events written for one input run three times")
}

// TestExactlyOnceWritersOfNamesThatRunIntoEachOtherAreTwo: group "a|b"
// reading stream "c" and group "a" reading stream "b|c" are two writers,
// not one that would take the other's outputs for its own.
func TestExactlyOnceWritersOfNamesThatRunIntoEachOtherAreTwo(t *testing.T) {
	base := dstest.StreamURL(t)
	a := &eoSource{Group: "a|b", Topic: "c", Stream: "c", Parts: 1, Lease: &fakeLease{epoch: 1}}
	b := &eoSource{Group: "a", Topic: "b|c", Stream: "b|c", Parts: 1, Lease: &fakeLease{epoch: 1}}
	require.NoError(t, eoPublisher(t, base, 0).Publish("out", eoOutputs(a, 0, `{}`)...))
	require.ErrorIs(t, eoPublisher(t, base, 0).Publish("out", eoOutputs(b, 5, `{}`)...), ErrSecondWriter)
}

// TestExactlyOnceConcurrentPublishesOfOneInputAreRefused: outputs of one
// input published by two calls at once have no order a redelivery could
// repeat; the second call is refused while the first is under way,
// nothing of it written.
func TestExactlyOnceConcurrentPublishesOfOneInputAreRefused(t *testing.T) {
	base := dstest.StreamURL(t)
	pub := eoPublisher(t, base, 0)
	src := &eoSource{Group: "g", Topic: "in", Stream: "in", Parts: 1, Lease: &fakeLease{epoch: 1}}
	first := eoOutputs(src, 0, `{"n":1}`)
	txn := exactlyonce.TxnOf(first[0].Context())
	txn.Publishing.Add(1) // a call of this input's outputs under way
	second := message.NewMessage(watermill.NewUUID(), []byte(`{"n":2}`))
	second.SetContext(first[0].Context())
	require.ErrorIs(t, pub.Publish("out", second), ErrNotExactlyOnce)
	txn.Publishing.Add(-1)
	require.NoError(t, pub.Publish("out", first...))
	assert.Len(t, dstest.ReadJSON(t, base+"/out"), 1)
}
