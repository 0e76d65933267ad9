package main

import (
	"context"
	"encoding/json"
	"fmt"
)

// verify reads the stream back and checks that it holds exactly the
// corpus's messages (by count in JSON mode, by length in byte mode), so
// that a row cannot look fast by losing or duplicating messages. It runs
// with -verify and -quick only: reading back costs as much as writing.
func (b *bench) verify(ctx context.Context, url string, c *corpus) error {
	if !b.opts.verify {
		return nil
	}
	var want int64
	for _, enc := range c.encoded {
		want += int64(len(enc))
	}
	count := 0
	hc := rawClient(1)
	defer hc.CloseIdleConnections()
	total, err := catchUp(ctx, hc, url, func(body []byte) error {
		if c.mode.framed {
			return nil
		}
		var msgs []json.RawMessage
		if err := json.Unmarshal(body, &msgs); err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		count += len(msgs)
		return nil
	})
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if c.mode.framed && total != want {
		return fmt.Errorf("verify: stream holds %d bytes, want %d", total, want)
	}
	if !c.mode.framed && count != len(c.encoded) {
		return fmt.Errorf("verify: stream holds %d messages, want %d", count, len(c.encoded))
	}
	return nil
}
