package partition

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/durablestreams/watermill-durablestreams/internal/dstest"
	"github.com/durablestreams/watermill-durablestreams/internal/protocol"
	"github.com/durablestreams/watermill-durablestreams/retry"
)

func TestMain(m *testing.M) { dstest.Main(m) }

func TestOfIsStableAndSpread(t *testing.T) {
	// Pinned values (FNV-1a is specified byte for byte, so these never
	// change; computed independently of this code).
	pinned := []struct {
		key  string
		n    int
		want int
	}{
		{"", 4, 0}, {"a", 4, 0}, {"a", 7, 5}, {"order-42", 7, 4},
		{"customer-7", 4, 1}, {"customer-7", 7, 5}, {"x", 4, 3},
	}
	for _, c := range pinned {
		if got := Of(c.key, c.n); got != c.want {
			t.Errorf("Of(%q, %d) = %d, want %d", c.key, c.n, got, c.want)
		}
	}
	if Of("anything", 1) != 0 || Of("anything", 0) != 0 {
		t.Fatal("one partition (or none) is partition 0")
	}
	counts := make([]int, 8)
	for i := range 8000 {
		counts[Of(fmt.Sprintf("key-%d", i), 8)]++
	}
	for p, c := range counts {
		if c < 800 || c > 1200 {
			t.Fatalf("partition %d got %d of 8000 keys: %v", p, c, counts)
		}
	}
}

func TestStreamNames(t *testing.T) {
	if got := StreamNames("orders", 1); len(got) != 1 || got[0] != "orders" {
		t.Fatalf("one partition: %v, want the topic unchanged", got)
	}
	got := StreamNames("orders", 3)
	want := []string{"orders.p0", "orders.p1", "orders.p2"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("StreamNames = %v, want %v", got, want)
	}
}

func client() *protocol.Client {
	return &protocol.Client{HTTP: protocol.NewHTTPClient(4), RequestTimeout: 5 * time.Second, Retry: retry.DefaultPolicy()}
}

func topicOf(t *testing.T, name string) Topic {
	base := dstest.Shared(t).StreamURL(dstest.StreamPath(t))
	return Topic{Name: name, RecordURL: base + "/" + RecordName(name), StreamURL: base + "/" + name}
}

func TestCountIsRecordedOnceOnTheServer(t *testing.T) {
	c, tp := client(), topicOf(t, "orders")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, ok, err := Load(ctx, c, c.Retry, tp.RecordURL); ok || err != nil {
		t.Fatalf("before any publisher: ok=%v err=%v, want none recorded", ok, err)
	}
	if err := Ensure(ctx, c, c.Retry, tp, 4); err != nil {
		t.Fatal(err)
	}
	if err := Ensure(ctx, c, c.Retry, tp, 4); err != nil {
		t.Fatalf("same count again: %v", err)
	}
	err := Ensure(ctx, c, c.Retry, tp, 8)
	var mm *MismatchError
	if !errors.As(err, &mm) || !errors.Is(err, ErrMismatch) || mm.Recorded != 4 || mm.Configured != 8 {
		t.Fatalf("other count: %v, want a MismatchError 4 vs 8", err)
	}
	n, ok, err := Load(ctx, c, c.Retry, tp.RecordURL)
	if err != nil || !ok || n != 4 {
		t.Fatalf("Load = %d %v %v, want 4", n, ok, err)
	}
	if err := Ensure(ctx, c, c.Retry, tp, 0); !errors.Is(err, protocol.ErrInvalidConfig) {
		t.Fatalf("zero partitions: %v, want ErrInvalidConfig", err)
	}
}

// A partitioned topic's own stream is sealed, so a writer that does not
// know of the partitions is refused instead of writing where no member
// reads.
func TestPartitionedTopicSealsItsOwnStream(t *testing.T) {
	c, tp := client(), topicOf(t, "orders")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// An empty stream there (a subscriber's SubscribeInitialize) is sealed too.
	if err := c.CreateStream(ctx, tp.StreamURL, protocol.StreamOptions{ContentType: protocol.ContentTypeJSON}); err != nil {
		t.Fatal(err)
	}
	if err := Ensure(ctx, c, c.Retry, tp, 3); err != nil {
		t.Fatal(err)
	}
	if got := post(t, tp.StreamURL); got != http.StatusConflict {
		t.Fatalf("append to the sealed stream: %d, want 409", got)
	}
	// One partition is the topic's own stream: nothing sealed.
	one := topicOf(t, "single")
	if err := Ensure(ctx, c, c.Retry, one, 1); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateStream(ctx, one.StreamURL, protocol.StreamOptions{ContentType: protocol.ContentTypeJSON}); err != nil {
		t.Fatalf("a one-partition topic's stream: %v", err)
	}
}

// A topic already written as one stream cannot become partitioned: its
// messages would never be read.
func TestTopicWithMessagesCannotBecomePartitioned(t *testing.T) {
	c, tp := client(), topicOf(t, "orders")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.CreateStream(ctx, tp.StreamURL, protocol.StreamOptions{ContentType: protocol.ContentTypeJSON}); err != nil {
		t.Fatal(err)
	}
	if got := post(t, tp.StreamURL); got/100 != 2 {
		t.Fatalf("append: %d", got)
	}
	err := Ensure(ctx, c, c.Retry, tp, 4)
	var mm *MismatchError
	if !errors.As(err, &mm) || !strings.Contains(err.Error(), "already holds messages") {
		t.Fatalf("Ensure on a written topic: %v, want a MismatchError naming the messages", err)
	}
	if _, ok, _ := Load(ctx, c, c.Retry, tp.RecordURL); ok {
		t.Fatal("a count was recorded for a topic that cannot be partitioned")
	}
}

func post(t *testing.T, url string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(`[{"x":1}]`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
