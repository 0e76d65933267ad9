module github.com/durablestreams/watermill-durablestreams/bench

go 1.24.0

require (
	github.com/ThreeDotsLabs/watermill v1.5.1
	github.com/durablestreams/watermill-durablestreams v0.0.0
	github.com/google/uuid v1.6.0
)

require (
	github.com/ThreeDotsLabs/watermill-nats/v2 v2.1.3 // indirect
	github.com/ThreeDotsLabs/watermill-redisstream v1.4.5 // indirect
	github.com/ThreeDotsLabs/watermill-sql/v4 v4.1.2 // indirect
	github.com/cenkalti/backoff/v5 v5.0.3 // indirect
	github.com/gogo/protobuf v1.3.2 // indirect
	github.com/lithammer/shortuuid/v3 v3.0.7 // indirect
	github.com/oklog/ulid v1.3.1 // indirect
	github.com/pkg/errors v0.9.1 // indirect
	github.com/sony/gobreaker v1.0.0 // indirect
	google.golang.org/protobuf v1.36.8 // indirect
)

replace github.com/durablestreams/watermill-durablestreams => ../
