package group

import (
	"hash/fnv"
	"slices"
)

// assign gives each stream to one member and returns the streams of
// member me. It is a pure function of the two sets, so every member that
// sees the same live set computes the same assignment.
//
// It is rendezvous hashing with bounded loads: each stream ranks the
// members by a hash of (stream, member) and goes to the first of its
// ranking that still has room, every member getting len(streams)/len(members)
// streams or one more. A stream's ranking does not depend on the other
// members, so when a member joins or leaves, most streams stay where they
// were (only the moved ones pause: a cooperative rebalance), where
// round-robin over sorted IDs moved nearly all of them.
func assign(streams, members []string, me string) []string {
	ms := slices.Compact(slices.Sorted(slices.Values(members)))
	if len(ms) == 0 {
		return nil
	}
	ss := slices.Sorted(slices.Values(streams))
	base, extra := len(ss)/len(ms), len(ss)%len(ms)
	load := make(map[string]int, len(ms))
	atCeiling := 0 // members holding base+1 streams
	var mine []string
	ranked := make([]string, len(ms))
	for _, s := range ss {
		copy(ranked, ms)
		slices.SortStableFunc(ranked, func(a, b string) int {
			ha, hb := weight(s, a), weight(s, b)
			switch {
			case ha > hb:
				return -1
			case ha < hb:
				return 1
			}
			return 0
		})
		for _, m := range ranked {
			n := load[m]
			if n < base || n == base && atCeiling < extra {
				if n == base {
					atCeiling++
				}
				load[m]++
				if m == me {
					mine = append(mine, s)
				}
				break
			}
		}
	}
	return mine
}

// weight is the rendezvous hash of a (stream, member) pair: FNV-1a of both
// with a separator that neither can contain, mixed by the splitmix64
// finaliser (FNV alone ranks names that differ in their last bytes
// alike), so that every process and version agrees. Ties (probability
// 2^-64 per pair) fall back on sorted member order: the sort is stable
// over the sorted members.
func weight(stream, member string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(stream))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(member))
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
