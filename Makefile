# devstatusd — build, run, test. Every target installs the Debian packages it needs first.
SHELL := /bin/bash
APT_PACKAGES := libmosquitto-dev mosquitto mosquitto-clients libleveldb-dev
BENCH_PACKAGES := wrk nginx-light hyperfine
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
CONFIG ?= config.toml.example
PREFIX ?= /usr/local

.PHONY: all deps bench-deps build release run test bench fuzz install clean

all: build

# Installs only what is missing, so a warm machine pays nothing.
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

bench-deps: deps
	@missing=""; for p in $(BENCH_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

build: deps
	swift build

release: deps
	swift build -c release

# Starts a local mosquitto on 127.0.0.1:1883 when the configured broker is local and not listening,
# then runs the daemon in the foreground with $(CONFIG).
run: release
	scripts/run-local.sh $(CONFIG)

test: deps
	swift test

bench: bench-deps release
	scripts/bench.sh

fuzz: deps
	Fuzz/run.sh

clean:
	rm -rf .build .build-*
