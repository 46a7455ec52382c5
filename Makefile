# tfsite — see README.md. Every target is documented by `make help`.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/tfsite/tfsite/internal/version.Version=$(VERSION)
BIN := bin/tfsite
# How long each fuzz target runs in `make test` (CI); raise it for a real fuzzing session.
FUZZTIME ?= 10s
.DEFAULT_GOAL := help

.PHONY: help deps build test test-unit lint fuzz boot-test clean


help: ## list targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

deps: ## install the Debian packages tests, demo and benchmarks use (root; no-op when present)
	hack/deps.sh

build: ## build bin/tfsite (the CLI, bring-up) and bin/tfsite-agent (the agent alone) (static, stripped)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/tfsite
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)-agent ./cmd/tfsite-agent

test: lint test-unit fuzz boot-test ## everything CI runs: lint, all tests (root tests need root), brief fuzzing, image boot + two-VM tests

# staticcheck, pinned; fetched from the module proxy once (go run caches the build).
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

# The operator's client commands (status, peers, site, render, peering) build
# for the machines operators use; the agent, discovery, net and console are Linux.
CLIENT_GOOS ?= darwin windows

lint: ## gofmt + go vet + staticcheck (pinned) + the client commands cross-compile (CLIENT_GOOS)
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null; git ls-files -o --exclude-standard '*.go' 2>/dev/null)); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	@for os in $(CLIENT_GOOS); do \
	  CGO_ENABLED=0 GOOS=$$os $(GO) build -trimpath -o /dev/null ./cmd/tfsite || { echo "tfsite does not build for GOOS=$$os"; exit 1; }; \
	  echo "cmd/tfsite builds for GOOS=$$os"; \
	done

test-unit: build ## go test ./... (netns/dnsmasq tests run as root, skip otherwise)
	$(GO) test -count=1 -timeout 20m ./...

fuzz: ## run every Fuzz target for FUZZTIME each
	FUZZTIME=$(FUZZTIME) hack/fuzz.sh

boot-test: ## as root with mkosi 24.3 (CI): build the raw image and the ISO, boot them under qemu (disk; ISO BIOS/UEFI x CD/disk), assert on the serial console; two-VM join
	@if [ "$$(id -u)" = 0 ] && mkosi --version 2>/dev/null | grep -q ' 24\.3'; then \
	  $(MAKE) --no-print-directory test-image IMAGE_FORMATS="raw iso" && GO=$(GO) hack/two-vm.sh; \
	elif [ -n "$$CI" ] && [ "$$CI" != false ]; then \
	  echo "boot-test: CI must run as root with mkosi 24.3 (.ci/run runs hack/image-deps.sh)"; exit 1; \
	else \
	  echo "boot-test: skipped: needs root and mkosi 24.3 (sudo hack/image-deps.sh; sudo make test)"; \
	fi

clean: ## remove build outputs
	rm -rf bin

# Area targets (bench-*, demo, image, ...) live in mk/*.mk.
-include mk/*.mk
