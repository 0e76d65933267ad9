package group

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestPartitionIsStableAndSpread(t *testing.T) {
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
		if got := Partition(c.key, c.n); got != c.want {
			t.Errorf("Partition(%q, %d) = %d, want %d", c.key, c.n, got, c.want)
		}
	}
	if Partition("anything", 1) != 0 || Partition("anything", 0) != 0 {
		t.Fatal("one partition (or none) is partition 0")
	}
	counts := make([]int, 8)
	for i := range 8000 {
		counts[Partition(fmt.Sprintf("key-%d", i), 8)]++
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

func TestPartitionCountIsRecordedOnceOnTheServer(t *testing.T) {
	cfg := fast(t, testBase(t), "orders", "m", "x")
	cfg.setDefaults()
	url := cfg.BaseURL + "/" + PartitionsStreamName("orders")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, ok, err := LoadPartitions(ctx, cfg.Client, cfg.RetryPolicy, url); ok || err != nil {
		t.Fatalf("before any publisher: ok=%v err=%v, want none recorded", ok, err)
	}
	if err := EnsurePartitions(ctx, cfg.Client, cfg.RetryPolicy, url, "orders", 4); err != nil {
		t.Fatal(err)
	}
	if err := EnsurePartitions(ctx, cfg.Client, cfg.RetryPolicy, url, "orders", 4); err != nil {
		t.Fatalf("same count again: %v", err)
	}
	err := EnsurePartitions(ctx, cfg.Client, cfg.RetryPolicy, url, "orders", 8)
	var mm *PartitionMismatchError
	if !errors.As(err, &mm) || !errors.Is(err, ErrPartitionMismatch) || mm.Recorded != 4 || mm.Configured != 8 {
		t.Fatalf("other count: %v, want a PartitionMismatchError 4 vs 8", err)
	}
	n, ok, err := LoadPartitions(ctx, cfg.Client, cfg.RetryPolicy, url)
	if err != nil || !ok || n != 4 {
		t.Fatalf("LoadPartitions = %d %v %v, want 4", n, ok, err)
	}
	if err := EnsurePartitions(ctx, cfg.Client, cfg.RetryPolicy, url, "orders", 0); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("zero partitions: %v, want ErrInvalidConfig", err)
	}
}
