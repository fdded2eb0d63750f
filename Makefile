# causeway — build, run and test the gateway.
#   make run    build and start the gateway with gateway.toml
#   make test   install the test peers (as root, when missing) and run every test
SHELL := /bin/bash
GO ?= go
BIN := bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
CONFIG ?= gateway.toml
# Packages whose code is concurrent run under the race detector.
PURE_PKGS := ./config/... ./mapping/...
RACE_PKGS = $(shell $(GO) list ./... | grep -v -e '/config$$' -e '/mapping$$')
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# Debian packages the tests talk to (real peers, not mocks).
TEST_DEBS := mosquitto mosquitto-clients libcoap3-bin socat libmodbus-dev gcc pkg-config curl openssl
TEST_BINS := mosquitto mosquitto_sub coap-client-notls socat gcc pkg-config curl openssl

.PHONY: all build run test test-deps vet lint bench cross clean fuzz
.PHONY: cross-amd64 cross-arm64 cross-armv7 cross-armv6 package package-amd64 package-arm64 package-armhf

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/gateway ./cmd/gateway

run: build
	./$(BIN)/gateway run -c $(CONFIG)

# Installs the peer programs with apt-get when one is missing and we are root.
test-deps:
	@missing=""; for b in $(TEST_BINS); do command -v $$b >/dev/null 2>&1 || [ -x /usr/sbin/$$b ] || missing="$$missing $$b"; done; \
	pkg-config --exists libmodbus 2>/dev/null || missing="$$missing libmodbus"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing test peers:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(TEST_DEBS) >/dev/null; \
	  else \
	    echo "missing test peers:$$missing — run as root or: sudo apt-get install $(TEST_DEBS)" >&2; \
	  fi; \
	fi

vet:
	$(GO) vet ./...

# cross: CI builds the arm binaries too.
test: test-deps $(BIN)/modbus-testserver vet cross
	PATH="$$PATH:/usr/sbin" $(GO) test -count=1 -race -timeout 8m $(RACE_PKGS)
	PATH="$$PATH:/usr/sbin" $(GO) test -count=1 -timeout 5m $(PURE_PKGS)

# The Modbus test server (internal/modbustest), on libmodbus.
$(BIN)/modbus-testserver: internal/modbustest/server/modbus-testserver.c | test-deps
	@mkdir -p $(BIN)
	gcc -O2 -Wall -Wextra -o $@ $< $$(pkg-config --cflags --libs libmodbus)

lint: vet
	@out="$$(gofmt -l $$(git ls-files '*.go'))"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) run $(STATICCHECK) ./...

# Runs each fuzz target for FUZZTIME (default 30s).
FUZZTIME ?= 30s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list 'Fuzz.*' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

# bench/queue.sh: the offline queue (segment log vs bbolt, replay, restart).
bench: test-deps
	@mkdir -p $(BIN)
	$(GO) test -run '^$$' -bench . -benchmem ./mapping/ ./adapters/coap/ ./mqttcore/ ./bridge/ ./internal/metrics/ ./internal/logging/ | tee $(BIN)/bench-go.txt
	PATH="$$PATH:/usr/sbin" bash bench/run.sh
	set -o pipefail; PATH="$$PATH:/usr/sbin" bash bench/queue.sh | tee $(BIN)/bench-queue.txt
	set -o pipefail; PATH="$$PATH:/usr/sbin" bash bench/modbus.sh | tee $(BIN)/bench-modbus.txt
	set -o pipefail; PATH="$$PATH:/usr/sbin" bash bench/uart.sh | tee $(BIN)/bench-uart.txt
	set -o pipefail; PATH="$$PATH:/usr/sbin" bash bench/coap.sh | tee $(BIN)/bench-coap.txt

# Static (CGO_ENABLED=0), stripped builds, each printing its size:
# bin/gateway-linux-{arm64,armv7,armv6} (`make cross`) and bin/gateway-linux-amd64.
CROSS_ENV_amd64 := GOARCH=amd64
CROSS_ENV_arm64 := GOARCH=arm64
CROSS_ENV_armv7 := GOARCH=arm GOARM=7
CROSS_ENV_armv6 := GOARCH=arm GOARM=6

cross: cross-arm64 cross-armv7 cross-armv6

cross-amd64 cross-arm64 cross-armv7 cross-armv6:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 GOOS=linux $(CROSS_ENV_$(@:cross-%=%)) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/gateway-linux-$(@:cross-%=%) ./cmd/gateway
	@f=$(BIN)/gateway-linux-$(@:cross-%=%); b=$$(stat -c %s $$f); \
	  printf '%s: %s bytes (%s MiB)\n' "$$f" "$$b" "$$(awk -v b=$$b 'BEGIN { printf "%.1f", b / 1048576 }')"

# Debian packages, built with nfpm from packaging/ (docs/install.md):
# bin/causeway_<version>_{arm64,armhf,amd64}.deb; armhf is the ARMv6 build (every Pi).
NFPM := github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
DEB_VERSION = $(shell bash packaging/debversion.sh '$(VERSION)')
# $(call deb,<binary suffix>,<nfpm arch>,<Debian arch>)
deb = rm -f $(BIN)/causeway_*_$(3).deb; \
	DEB_VERSION='$(DEB_VERSION)' DEB_ARCH=$(2) GATEWAY_BIN=$(BIN)/gateway-linux-$(1) \
	$(GO) run $(NFPM) package -f packaging/nfpm.yaml -p deb -t $(BIN)/

package: package-arm64 package-armhf package-amd64

package-amd64: cross-amd64
	$(call deb,amd64,amd64,amd64)

package-arm64: cross-arm64
	$(call deb,arm64,arm64,arm64)

package-armhf: cross-armv6
	$(call deb,armv6,arm6,armhf)

clean:
	rm -rf $(BIN)
