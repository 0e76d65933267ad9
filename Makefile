# Targets follow the official Watermill adapters. Every target that needs the
# Durable Streams reference server installs it from testserver/package-lock.json
# and the tests start it themselves.

STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.7.0
GO_TEST := go test -timeout 20m

.PHONY: fuzz server test test_short test_race test_reliability test_stress test_examples test_browser bench bench_peers test_bench lint fmt up example

# Installs the server from the lock file only when the lock file changed,
# so that a make target never reinstalls it under tests already running.
SERVER_STAMP := testserver/node_modules/.package-lock.json

server: $(SERVER_STAMP)

$(SERVER_STAMP): testserver/package-lock.json testserver/package.json
	npm ci --prefix testserver
	@touch $@

test: server
	$(GO_TEST) -race ./...

test_short: server
	$(GO_TEST) -short ./...

test_race: server
	$(GO_TEST) -race -count=1 ./...

test_reliability: server
	$(GO_TEST) -race -count=1 -tags=reliability -run 'Reliability|Fault|Crash|Zombie' -timeout 30m ./...

test_stress: server
	$(GO_TEST) -race -count=1 -tags=stress -timeout 45m ./...

# The go tool leaves directories starting with "_" out of ./... patterns,
# so the examples are listed one by one. TestExamples runs them too.
EXAMPLES := $(sort $(dir $(wildcard _examples/*/main.go)))

test_examples: server
	$(GO_TEST) -count=1 $(addprefix ./,$(EXAMPLES))

# Needs a headless Chromium (Debian: apt-get install -y chromium); skips without.
test_browser: server
	$(GO_TEST) -count=1 -tags=browser ./_examples/browser

# Every fuzz target for FUZZTIME each: a duration, or a count such as
# 200000x (go test runs each for 10000x). A duration can meet Go 1.26's
# coordinator race at the deadline (golang/go#75804); the test tells that
# apart from a finding, which always writes a reproducer.
FUZZTIME ?= 30s
fuzz:
	DS_FUZZTIME=$(FUZZTIME) go test -count=1 -run TestFuzzTargetsBriefly -v -timeout 60m .

# The benchmark is a module of its own (bench/go.mod, with a replace to
# this one), so that ./... and the library's dependencies stay the library's.
# The bench module's own tests (a quick run of every row and of the peers).
test_bench: server
	cd bench && $(GO_TEST) -race -count=1 ./...

bench: server
	cd bench && go run . $(BENCH_FLAGS)

# The same-machine comparison with Watermill's Redis Streams, NATS JetStream
# and SQL (PostgreSQL) Pub/Subs. bench/peers.sh starts their servers on
# loopback (installing the Debian packages first when run as root) and stops
# them afterwards; a peer whose server is missing is skipped with a hint.
bench_peers: server
	./bench/peers.sh start
	cd bench && go run . -peers all $(BENCH_FLAGS); rc=$$?; cd .. && ./bench/peers.sh stop; exit $$rc

# Every staticcheck check (staticcheck.conf: "all").
lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo 'gofmt: files above need formatting'; exit 1)
	go vet ./...
	go run $(STATICCHECK) ./...
	cd bench && go vet ./... && go run $(STATICCHECK) ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

up: server
	node testserver/server.mjs --port 4437

# make example EXAMPLE=router (or cqrs, llm-tokens, browser, workers)
EXAMPLE ?= basic

example: server
	node testserver/with-server.mjs go run ./_examples/$(EXAMPLE)
