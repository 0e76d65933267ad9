package main

import (
	"context"
	stdsql "database/sql"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	wmsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	nc "github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"
)

// The peers' servers come from Debian packages; bench/peers.sh (make
// bench_peers) starts them on loopback with the durability settings the
// durability strings state. Every adapter runs with its defaults except
// where a setting is needed to read from the start of a fresh topic.

const peerHint = "run make bench_peers (as root it installs and starts the servers)"

func redisPeer(addr string) peer {
	return peer{
		name:       "redis",
		durability: "AOF, appendfsync everysec: fsync once a second, not per write (watermill-redisstream)",
		addr:       addr,
		hint:       peerHint + ", or start redis-server there",
		open: func(ctx context.Context) (message.Publisher, message.Subscriber, func() error, error) {
			// Each side closes its own client.
			pubClient := redis.NewClient(&redis.Options{Addr: addr, PoolSize: peerGoroutines})
			subClient := redis.NewClient(&redis.Options{Addr: addr})
			pub, err := redisstream.NewPublisher(redisstream.PublisherConfig{Client: pubClient}, watermill.NopLogger{})
			if err != nil {
				_, _ = pubClient.Close(), subClient.Close()
				return nil, nil, nil, err
			}
			sub, err := redisstream.NewSubscriber(redisstream.SubscriberConfig{
				Client:        subClient,
				ConsumerGroup: "bench-" + uuid.NewString()[:8],
				OldestId:      "0",
			}, watermill.NopLogger{})
			if err != nil {
				_, _ = pub.Close(), subClient.Close()
				return nil, nil, nil, err
			}
			return pub, sub, func() error { return closeBoth(pub, sub) }, nil
		},
	}
}

func natsPeer(natsURL string) peer {
	return peer{
		name:       "nats",
		durability: "JetStream file store; nats-server 2.9 fsyncs on its sync interval (2 min), not per write",
		addr:       hostPort(natsURL),
		hint:       peerHint + ", or start nats-server -js there",
		open: func(ctx context.Context) (message.Publisher, message.Subscriber, func() error, error) {
			js := nats.JetStreamConfig{
				AutoProvision:    true,
				SubscribeOptions: []nc.SubOpt{nc.DeliverAll(), nc.AckExplicit()},
			}
			options := []nc.Option{nc.Timeout(10 * time.Second)}
			pub, err := nats.NewPublisher(nats.PublisherConfig{URL: natsURL, NatsOptions: options, JetStream: js}, watermill.NopLogger{})
			if err != nil {
				return nil, nil, nil, err
			}
			sub, err := nats.NewSubscriber(nats.SubscriberConfig{
				URL:            natsURL,
				NatsOptions:    options,
				AckWaitTimeout: 30 * time.Second,
				CloseTimeout:   10 * time.Second,
				JetStream:      js,
			}, watermill.NopLogger{})
			if err != nil {
				_ = pub.Close()
				return nil, nil, nil, err
			}
			return pub, sub, func() error { return closeBoth(pub, sub) }, nil
		},
	}
}

func postgresPeer(dsn string) peer {
	return peer{
		name:       "postgres",
		durability: "fsync on, synchronous_commit on: WAL flushed per commit (watermill-sql v4, pgx)",
		addr:       hostPort(dsn),
		hint:       peerHint + ", or point -postgres at a PostgreSQL server",
		open: func(ctx context.Context) (message.Publisher, message.Subscriber, func() error, error) {
			db, err := stdsql.Open("pgx", dsn)
			if err != nil {
				return nil, nil, nil, err
			}
			db.SetMaxOpenConns(peerGoroutines + 8)
			db.SetMaxIdleConns(peerGoroutines + 8)
			beginner := wmsql.BeginnerFromStdSQL(db)
			pub, err := wmsql.NewPublisher(beginner, wmsql.PublisherConfig{
				SchemaAdapter:        wmsql.DefaultPostgreSQLSchema{},
				AutoInitializeSchema: true,
			}, watermill.NopLogger{})
			if err != nil {
				_ = db.Close()
				return nil, nil, nil, err
			}
			sub, err := wmsql.NewSubscriber(beginner, wmsql.SubscriberConfig{
				SchemaAdapter:    wmsql.DefaultPostgreSQLSchema{},
				OffsetsAdapter:   wmsql.DefaultPostgreSQLOffsetsAdapter{},
				InitializeSchema: true,
			}, watermill.NopLogger{})
			if err != nil {
				_ = db.Close()
				return nil, nil, nil, err
			}
			return pub, sub, func() error {
				err := closeBoth(pub, sub)
				_ = db.Close()
				return err
			}, nil
		},
	}
}
