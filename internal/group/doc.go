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
//   - members/<w>: the members log of time window w (by the server's
//     Date; window long), JSON member records appended without producer
//     headers: join, hb (heartbeat, every HeartbeatInterval), release (a
//     hint that a stream is free), leave, and next (the last record of a
//     window's log, naming the next). Each carries the member's ID and
//     incarnation (random per Join). A member reads from the tail it had
//     when it joined and follows next records; it never reads history. The
//     first writer of a new window creates its log and closes the previous
//     one; logs carry a Stream-TTL of three windows and the one before the
//     previous is deleted, so the storage is bounded by members, not time.
//   - streams/<stream>: the ownership root of one topic stream: claims,
//     releases and log rotations, written only with Producer-Id "owner"
//     and Producer-Epoch = the ownership generation. Each record carries
//     owner, its incarnation, claim nonce, epoch, a position, the current
//     log and a released mark. It takes a record per claim, release and rotation
//     only, so a claim reads little.
//   - streams/<stream>/<epoch>.<n>: the position logs of one epoch, one
//     record per Store, chained: a full log is closed with a fenced record
//     naming log n+1, the root is told every hintEvery rotations, and the
//     logs before the hinted one are deleted. A take-over finds the last
//     log from the root's hint (HEAD search) and seals it.
//
// Every record read is range-checked (epochs, windows, positions); one
// that does not parse or is out of range is logged at Error and skipped:
// it never stalls a stream.
//
// # Membership and assignment
//
// Each member notes, on its own monotonic clock, when it last saw a record
// of every other member. A member is alive while it was seen within
// SessionTimeout and has not left (a member never seen counts as seen at
// our join). The assignment is a pure function of the live set: balanced
// rendezvous hashing, so every member has the same count or one more and a
// join or leave moves few streams (3.82 of 12 on average for 3 → 4
// members, where 3 must move; now and then one between two old members),
// while the others keep delivering: cooperative, as Kafka's KIP-429. It is
// not sticky: on a one-stream topic a newcomer takes the stream in about
// half of the joins (a pause of about 20 ms, no message twice). A new
// member claims settleDelay (10 ms with the defaults) after it has read
// its own join back, so that members started together see each other
// before they claim instead of handing streams round at once. Joins,
// leaves, members declared dead and each stream that moves are logged at
// Info.
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
// once. The consumer first waits (HandoverTimeout) for the message a
// handler holds and stores its position. A lease lost only to a local
// session expiry still writes its fenced release, so that a paused member
// never leaves a stream naming it while it does not read it. Leave revokes
// every lease, waits for the consumers (all but a reserve of its context
// for the final writes), releases the rest itself, stops
// heart-beating and appends a leave record: a standby takes over within
// milliseconds. A member that dies is taken for dead SessionTimeout after
// its last heartbeat was seen; its streams are then claimed from the
// position it last stored, so what it had in hand is delivered again.
//
// # In the public API
//
// A Subscriber with a ConsumerGroup (consumer_group.go) joins per
// Subscribe with the topic's streams (the partitions recorded by
// internal/partition) and reads each Lease with a subscription that starts
// at Lease.Start and stores through Lease.Store (fenced). It delivers only
// while Lease.Valid, stops softly on Lease.Done (the message in hand is
// waited for), at once on Lease.Ended, and releases the lease once the
// read stored its last position. Close and the Subscribe context call
// Leave.
//
// # Known limits
//
//   - Rendezvous hashing is near, not exactly, minimal: a join of a fourth
//     member to three moved 3.82 of 12 streams on average (3 is the least).
package group
