// Package group makes a consumer group share a topic's streams among its
// members: each stream is owned by one member at a time, in stream order,
// at-least-once, with failover and fencing. It uses Durable Streams
// streams and idempotent-producer epochs only, so it works on every
// server that speaks the protocol.
//
// # Streams
//
// Under BaseURL/__groups/<group>/<topic>/ the group keeps:
//
//   - members: a JSON stream of member records, appended without producer
//     headers: join, hb (heartbeat, every HeartbeatInterval), release (a
//     hint that a stream is free) and leave. Each carries the member's ID
//     and incarnation (random per Join; none in records of earlier
//     versions, an unknown incarnation). A member reads it from the tail
//     it had when it joined and never reads its history.
//   - streams/<stream>: the ownership root of one topic stream: claims,
//     releases and log rotations, written only with Producer-Id "owner"
//     and Producer-Epoch = the ownership generation. Each record carries
//     owner, its incarnation, claim nonce, epoch, a position, the current
//     log and a released mark. It takes a record per claim, release and rotation
//     only, so a claim reads little.
//   - streams/<stream>/<epoch>.<n>: the position logs of one epoch, one
//     record per Store. After defaultRotateEvery (1000) positions the
//     owner starts log n+1 with the current position, points the root to
//     it (fenced) and deletes log n.
//
// # Membership and assignment
//
// Each member notes, on its own monotonic clock, when it last saw a record
// of every other member. A member is alive while it was seen within
// SessionTimeout and has not left (a member never seen counts as seen at
// our join). The assignment is a pure function of the sorted live set:
// the sorted streams go round-robin, so every member has the same count or
// one more. A new member only listens for 1.5 HeartbeatIntervals before
// it claims anything, so that it knows the live set.
//
// # Incarnations of one member ID
//
// What a member knows of another is kept per incarnation: a leave or
// heartbeat of one incarnation of an ID never changes the state of
// another, and a join ends the earlier incarnations of its ID. So a member
// restarted under its ID before its old leave record landed is not taken
// for gone. Of two live incarnations of one ID the newer wins (as Kafka
// static membership fences the older instance): a member that reads a join
// of its own ID with another incarnation after its own join is the older
// one. It loses every lease (a FencedError, reasonSuperseded), claims and
// heartbeats no more, and closes Done (Err is ErrSuperseded); the
// Subscriber then logs an Error and ends the subscription. A stream whose
// root names another incarnation of our own ID is ours to take only if
// that incarnation joined before us: that one's join came before its
// claim, which we read, so once we have read the members stream up to a
// sync record of our own appended after that (syncMembers), we know. The
// newer one therefore claims the streams at their next epoch at once, as
// after an ordinary restart, and the older one never claims them back: at
// most what the older one had in hand is delivered again.
//
// # Ownership and fencing
//
// A member claims a stream assigned to it when the root's current record
// (the last one of the highest epoch) is released, absent, its own earlier
// claim or that of an older incarnation of its ID, or that of an
// incarnation of a member it holds dead. The claim is a fenced write at
// epoch E+1, seq 0: from then on the server refuses every root write of
// epoch E with 403 (the old owner cannot release or rotate). Two members
// racing for one epoch both send seq 0: one gets 200, the other a
// duplicate 204, and both read the root back to see whose claim nonce
// holds the epoch. The winner then takes over: no record of epoch E can
// land any more, so the root names the old owner's last log for good; the
// winner closes that log (Stream-Closed), so the old owner's next position
// write gets 409 Stream-Closed and it stops that stream, reads the log's
// last position, which is where it starts, and opens its own log. A 409
// sequence gap (the server forgot the producer state) or a 404 (a stream
// deleted) also ends a lease: a former owner never recreates a stream,
// and the member claims again under a new epoch if it is still assigned.
// Root records of a lower epoch written after a higher one (a zombie the
// server could not fence after forgetting its state, PROTOCOL.md §5.2.1)
// are ignored.
//
// # Leases and local deadlines
//
// Every heartbeat accepted by the server, sent at t0, moves the member's
// local deadline to t0 + SessionTimeout - Margin. The others see that
// heartbeat no sooner than t0 and wait SessionTimeout after seeing it, so
// the old owner's deadline always comes first, without synchronised
// clocks. Lease.Valid is a local check against that deadline: a member
// resumed after SIGSTOP sees false before it delivers anything, and its
// heartbeat loop ends the expired session (and all its leases) before it
// sends another heartbeat, so an old session is never revived.
//
// # Rebalance, Leave and failure
//
// When the assignment takes a stream away, its lease is revoked: the
// consumer stops delivering and Releases it with its last position; the
// release record and the members-stream hint let the next owner claim at
// once. Leave revokes every lease, waits for the consumers (at most half
// the time left in its context), releases the rest itself, stops
// heart-beating and appends a leave record: a standby takes over within
// milliseconds. A member that dies is taken for dead SessionTimeout after
// its last heartbeat was seen; its streams are then claimed from the
// position it last stored, so what it had in hand is delivered again.
//
// # In the public API
//
// A Subscriber with a ConsumerGroup and no OffsetStore (consumer_group.go)
// joins per Subscribe with the topic's
// streams (group.StreamNames of the recorded partition count) and reads
// each Lease with a Subscriber of its own whose OffsetStore is the lease:
// Load returns Lease.Start, Store is Lease.Store (fenced). It forwards a
// message only while Lease.Valid, stops the read on Lease.Done, and
// releases the lease with the last stored position once the read has
// stored it on the way out. Close and the Subscribe context call Leave.
// A Publisher with Partitions (publisher_partitions.go) maps keys with Partition
// and records the count with EnsurePartitions.
//
// # Known limits
//
//   - The members stream grows by one record per member and heartbeat; it
//     is never read from its start, so this costs only storage.
//   - The assignment is round-robin over sorted member IDs: a join or leave
//     may move more streams than a sticky assignment would.
package group
