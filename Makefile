# invoicesync: see README.md. `make help` lists the targets.

SHELL := /bin/bash
MODULES := pkg migrations sender receiver e2e
PKGS := $(MODULES:%=./%/...)
BIN := bin
PG_URL ?= postgres://invoicesync:invoicesync@127.0.0.1:5432
export INVOICESYNC_TEST_DATABASE_URL ?= $(PG_URL)/postgres
GOTEST_FLAGS ?= -race -count=1 -timeout 20m
# Packages whose tests talk to Kafka: run again against Apache Kafka by test-apache-kafka.
KAFKA_PKGS := ./pkg/kafkasec/... ./pkg/outbox/... ./pkg/consume/... ./receiver/... ./e2e/...

.PHONY: help build test test-apache-kafka test-short fmt lint vet tidy postgres up down demo status clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

build: ## build bin/sender, bin/receiver and bin/devkafka
	@mkdir -p $(BIN)
	go build -o $(BIN)/sender ./sender/cmd/sender
	go build -o $(BIN)/receiver ./receiver/cmd/receiver
	go build -o $(BIN)/devkafka ./pkg/cmd/devkafka

postgres: ## start the local PostgreSQL and create the role and databases (idempotent)
	@./scripts/postgres.sh

test: postgres ## run every test against real PostgreSQL and the SCRAM broker
	go test $(GOTEST_FLAGS) $(PKGS)

test-apache-kafka: postgres ## run the Kafka tests against the official Apache Kafka broker (jars fetched with Maven, cached)
	@./scripts/apache-kafka.sh start
	@set -a; eval "$$(./scripts/apache-kafka.sh env)"; set +a; \
	  go test $(GOTEST_FLAGS) $(KAFKA_PKGS); rc=$$?; ./scripts/apache-kafka.sh stop; exit $$rc

test-short: ## unit tests only (no PostgreSQL needed)
	INVOICESYNC_TEST_DATABASE_URL= go test -count=1 -short $(PKGS)

fmt: ## gofmt the tree
	gofmt -w $(MODULES)

vet: ## go vet every module
	go vet $(PKGS)

lint: vet ## vet and check formatting
	@test -z "$$(gofmt -l $(MODULES))" || { gofmt -l $(MODULES); echo "gofmt needed: make fmt"; exit 1; }

tidy: ## go mod tidy every module
	@for m in $(MODULES); do (cd $$m && go mod tidy); done

up: ## set up and run the whole pipeline locally (PostgreSQL, embedded SCRAM Kafka, sender, relay, receiver) and show a sync
	@./scripts/local.sh up

demo: ## with `make up` running: send invoices, mark one ERROR, show the receiver before and after
	@./scripts/local.sh demo

down: ## stop what `make up` started
	@./scripts/local.sh down

status: ## show which local processes run
	@./scripts/local.sh status

clean: ## remove built binaries and local run state
	rm -rf $(BIN) .local

# ---- Benchmark harness (bench/, see bench/README.md) ----
# The harness module joins lint, vet, tidy and the unit tests, so a change
# to the packages it drives that breaks it shows in CI.
MODULES += bench
PKGS += ./bench/...
BENCH_FLAGS ?=

.PHONY: bench bench-quick bench-profile bench-bin

bench-bin: build
	go build -o $(BIN)/bench ./bench/cmd/bench

bench: bench-bin postgres ## full benchmark (live 250..6000/s x 30s, limit, watermill peer, bulk) -> bench/out/latest.{json,md,svg}; BENCH_FLAGS adds flags
	$(BIN)/bench run --preset full $(BENCH_FLAGS)

bench-quick: bench-bin postgres ## short benchmark, < 3 min: live 500/1000/3000/s x 10s + short limit, peer, bulk -> bench/out/latest.*
	$(BIN)/bench run --preset quick $(BENCH_FLAGS)

bench-profile: bench-bin postgres ## bench-quick with CPU profiles of every process at 1000/s (bench/out/run.tmp/profiles)
	$(BIN)/bench run --preset quick --profile-rate 1000 $(BENCH_FLAGS)
