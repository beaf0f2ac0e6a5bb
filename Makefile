# Airlock. `make dev` runs it; `make test` runs every test.
GO           ?= go
AIRLOCK_CACHE ?= $(HOME)/.cache/airlock
export AIRLOCK_CACHE
VERSION      ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS      := -X github.com/airlockhq/airlock/version.Version=$(VERSION)

.PHONY: dev build tools test unit lint histories bench bench-upload clean help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

dev: ## run Airlock locally: Temporal dev server + UI, worker, API and console (:8080), stores under .airlock/ (Ctrl-C stops)
	$(GO) run ./deploy/dev

build: ## build bin/airlock (the CLI), bin/airlock-worker and bin/airlock-api (API and console)
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/airlock ./starter
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/airlock-worker ./workers
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/airlock-api ./api

tools: ## install the pinned Temporal CLI and workflowcheck into $(AIRLOCK_CACHE)/bin (once)
	deploy/tools/install.sh

lint: tools ## go vet, gofmt and workflowcheck (workflow determinism)
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt would change the files above"; exit 1; }
	$(AIRLOCK_CACHE)/bin/workflowcheck -config workflowcheck.config.yaml ./...

test: lint ## every test: unit, workflow (time skipping), replay, integration and crash tests on a real dev server
	$(GO) test -count=1 ./...

unit: ## the tests that need no server
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /integration)

histories: tools ## re-record the replay test's histories from real runs (after an intended, versioned change)
	AIRLOCK_RECORD_HISTORIES=$(CURDIR)/workflows/testdata/histories $(GO) test -count=1 -run 'TestImport|TestConsoleUploadAndApproveInBrowser' ./integration/

bench: ## benchmarks (not in make test): 1 GiB from S3 and Azure Blob vs rclone and aws s3 cp, then the upload benchmark; BENCH_FLAGS='-runs 5 ...'
	deploy/tools/install.sh versitygw
	deploy/tools/install.sh azurite
	deploy/tools/install.sh bench
	$(GO) run ./bench $(BENCH_FLAGS)
	deploy/tools/install.sh temporal
	$(GO) run ./bench upload $(UPLOAD_BENCH_FLAGS)

bench-upload: ## upload benchmark alone: 1 GiB through the API (tus) vs cp on the same disk; UPLOAD_BENCH_FLAGS='-chunk 8MiB ...'
	deploy/tools/install.sh temporal
	$(GO) run ./bench upload $(UPLOAD_BENCH_FLAGS)

clean: ## remove local state (.airlock/) and built binaries
	rm -rf .airlock bin
