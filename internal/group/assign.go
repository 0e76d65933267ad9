package group

import "slices"

// assign gives each stream to one member, the same on every member that
// sees the same live set: streams and members sorted, stream i to member
// i mod len(members). Every member gets len(streams)/len(members) streams
// or one more (balanced within one). It returns the streams of member me.
func assign(streams, members []string, me string) []string {
	ss := slices.Sorted(slices.Values(streams))
	ms := slices.Compact(slices.Sorted(slices.Values(members)))
	if len(ms) == 0 {
		return nil
	}
	var mine []string
	for i, s := range ss {
		if ms[i%len(ms)] == me {
			mine = append(mine, s)
		}
	}
	return mine
}
