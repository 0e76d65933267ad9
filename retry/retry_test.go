package retry_test

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/durablestreams/watermill-durablestreams/retry"
)

func TestBackoffGrowsAndStaysInBounds(t *testing.T) {
	p := retry.Policy{InitialBackoff: 10 * time.Millisecond, MaxBackoff: 80 * time.Millisecond}
	for attempt, ceiling := range map[int]time.Duration{1: 10, 2: 20, 3: 40, 4: 80, 10: 80, 100: 80} {
		ceiling *= time.Millisecond
		for range 50 {
			d := p.Backoff(attempt)
			assert.GreaterOrEqual(t, d, ceiling/2, "attempt %d", attempt)
			assert.LessOrEqual(t, d, ceiling, "attempt %d", attempt)
		}
	}
}

// TestBackoffOfTheZeroPolicy: without InitialBackoff a retry still waits
// (50ms, jittered), so that it never follows its failure at once.
func TestBackoffOfTheZeroPolicy(t *testing.T) {
	for range 50 {
		d := retry.Policy{}.Backoff(1)
		assert.GreaterOrEqual(t, d, 25*time.Millisecond)
		assert.LessOrEqual(t, d, 50*time.Millisecond)
	}
}

// TestBackoffAtTheEdges: any attempt number and any policy Validate
// accepts give a wait in (0, MaxBackoff], even where doubling would
// overflow a Duration.
func TestBackoffAtTheEdges(t *testing.T) {
	for _, p := range []retry.Policy{
		{InitialBackoff: time.Second, MaxBackoff: math.MaxInt64},
		{InitialBackoff: 1, MaxBackoff: math.MaxInt64},
		{InitialBackoff: 1},
		{InitialBackoff: 2, MaxBackoff: math.MaxInt64},
		{InitialBackoff: math.MaxInt64, MaxBackoff: math.MaxInt64},
		{InitialBackoff: 3, MaxBackoff: 5},
		{MaxAttempts: 5},
	} {
		for _, attempt := range []int{math.MinInt, -1, 0, 1, 2, 62, 63, 64, 65, 200, math.MaxInt} {
			d := p.Backoff(attempt)
			assert.Positive(t, d, "%+v attempt %d", p, attempt)
			if p.MaxBackoff > 0 {
				assert.LessOrEqual(t, d, p.MaxBackoff, "%+v attempt %d", p, attempt)
			}
		}
	}
}

func TestAllows(t *testing.T) {
	start := time.Now()
	assert.True(t, retry.Policy{}.Allows(1000, start, time.Hour))
	assert.False(t, retry.Policy{MaxAttempts: 3}.Allows(3, start, 0))
	assert.True(t, retry.Policy{MaxAttempts: 3}.Allows(2, start, 0))
	assert.False(t, retry.Policy{MaxElapsed: time.Second}.Allows(1, start, 2*time.Second))
	assert.False(t, retry.Policy{MaxElapsed: time.Second}.Allows(1, start, math.MaxInt64), "a wait whose sum overflows")
}

// TestDefaultPolicy pins the defaults the documentation states.
func TestDefaultPolicy(t *testing.T) {
	assert.Equal(t, retry.Policy{
		InitialBackoff: 50 * time.Millisecond, MaxBackoff: 5 * time.Second,
		MaxElapsed: 2 * time.Minute, MaxUnreachable: 10 * time.Second,
	}, retry.DefaultPolicy())
}
