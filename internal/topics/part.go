package topics

// prepared is the part of a Publish call that goes to one stream:
// marshaled, validated, and with the stream's producer acquired (the
// caller releases it).
type prepared struct {
	tp       *topicProducer
	payloads [][]byte
	// idx[j] is the index in the call of the part's message j; nil when
	// the part is the whole call.
	idx []int
}

func (b prepared) index(j int) int {
	if b.idx == nil {
		return j
	}
	return b.idx[j]
}

// partOwners tells the producer of each of the call's n messages.
func partOwners(n int, parts []prepared) func(int) *topicProducer {
	if len(parts) <= 1 && parts[0].idx == nil {
		return func(int) *topicProducer { return parts[0].tp }
	}
	owners := make([]*topicProducer, n)
	for _, part := range parts {
		for j := range part.payloads {
			owners[part.index(j)] = part.tp
		}
	}
	return func(i int) *topicProducer { return owners[i] }
}
