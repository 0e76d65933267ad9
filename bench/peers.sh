#!/usr/bin/env bash
# Starts (start) or stops (stop) the peer servers of make bench_peers on
# loopback, each in its own directory under BENCH_PEERS_DIR, with the
# durability settings the peer table states. As root it first installs
# what is missing from the Debian packages; otherwise a missing server is
# skipped with a hint. Stops only the processes it started (pid files),
# then removes what they stored.
set -u
DIR=${BENCH_PEERS_DIR:-/tmp/bench-peers}
REDIS_PORT=16379
NATS_PORT=14222
PG_PORT=15432

pg_bin() {
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
		[ -x "$d/pg_ctl" ] && { echo "$d"; return; }
	done
}

missing() {
	m=""
	command -v redis-server >/dev/null 2>&1 || m="$m redis-server"
	command -v nats-server >/dev/null 2>&1 || m="$m nats-server"
	[ -n "$(pg_bin)" ] || m="$m postgresql"
	echo "$m"
}

install() {
	m=$(missing)
	[ -z "$m" ] && return
	if [ "$(id -u)" != 0 ]; then
		echo "peers: not installed:$m; as root: apt-get install -y$m (or run make bench_peers as root)"
		return
	fi
	echo "peers: installing$m"
	timeout 600 apt-get update -qq >/dev/null &&
		DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq --no-install-recommends $m >/dev/null ||
		echo "peers: apt-get install$m failed; the peers it lacks are skipped"
}

# wait_port PORT: until something listens on 127.0.0.1:PORT, 30 s at most.
wait_port() {
	i=0
	while [ $i -lt 60 ]; do
		(exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0
		sleep 0.5
		i=$((i + 1))
	done
	return 1
}

start() {
	install
	mkdir -p "$DIR"
	if command -v redis-server >/dev/null 2>&1; then
		mkdir -p "$DIR/redis"
		# AOF on, fsync once a second (Redis's default AOF policy), no RDB snapshots.
		redis-server --bind 127.0.0.1 --port $REDIS_PORT --protected-mode yes \
			--dir "$DIR/redis" --appendonly yes --appendfsync everysec --save '' \
			--daemonize yes --pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log" &&
			wait_port $REDIS_PORT && echo "peers: redis on 127.0.0.1:$REDIS_PORT (appendonly yes, appendfsync everysec)" ||
			echo "peers: redis did not start; see $DIR/redis.log"
	fi
	if command -v nats-server >/dev/null 2>&1; then
		# JetStream, file store; nats-server 2.9 fsyncs on its sync interval, not per write.
		nohup nats-server -a 127.0.0.1 -p $NATS_PORT -js -sd "$DIR/nats" \
			-P "$DIR/nats.pid" -l "$DIR/nats.log" >/dev/null 2>&1 &
		wait_port $NATS_PORT && echo "peers: nats on 127.0.0.1:$NATS_PORT (JetStream, file store)" ||
			echo "peers: nats-server did not start; see $DIR/nats.log"
	fi
	bin=$(pg_bin)
	if [ -n "$bin" ]; then
		as=""
		# initdb and postgres refuse to run as root: run them as postgres.
		if [ "$(id -u)" = 0 ]; then
			id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
			as="runuser -u postgres --"
		fi
		mkdir -p "$DIR/pg" && [ "$(id -u)" = 0 ] && chown postgres "$DIR/pg"
		chmod 700 "$DIR/pg"
		[ -f "$DIR/pg/PG_VERSION" ] ||
			$as "$bin/initdb" -D "$DIR/pg" -A trust -U postgres >"$DIR/initdb.log" 2>&1 ||
			echo "peers: initdb failed; see $DIR/initdb.log"
		# Durable per commit: fsync on, synchronous_commit on (PostgreSQL's defaults).
		$as "$bin/pg_ctl" -D "$DIR/pg" -l "$DIR/pg/postgres.log" -w -t 30 \
			-o "-c listen_addresses=127.0.0.1 -p $PG_PORT -c unix_socket_directories='$DIR/pg' -c fsync=on -c synchronous_commit=on -c max_connections=200" \
			start >/dev/null &&
			echo "peers: postgres on 127.0.0.1:$PG_PORT (fsync on, synchronous_commit on)" ||
			echo "peers: postgres did not start; see $DIR/pg/postgres.log"
	fi
}

stop() {
	[ -f "$DIR/redis.pid" ] && kill "$(cat "$DIR/redis.pid")" 2>/dev/null
	[ -f "$DIR/nats.pid" ] && kill "$(cat "$DIR/nats.pid")" 2>/dev/null
	bin=$(pg_bin)
	if [ -n "$bin" ] && [ -f "$DIR/pg/postmaster.pid" ]; then
		as=""
		[ "$(id -u)" = 0 ] && as="runuser -u postgres --"
		$as "$bin/pg_ctl" -D "$DIR/pg" -m fast -w -t 30 stop >/dev/null
	fi
	# Each run writes fresh topics: drop what the servers stored.
	rm -rf "$DIR/redis" "$DIR/nats"
	[ -f "$DIR/pg/postmaster.pid" ] || rm -rf "$DIR/pg"
	rm -f "$DIR/redis.pid" "$DIR/nats.pid" "$DIR/redis.log" "$DIR/nats.log" "$DIR/initdb.log"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
*) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
