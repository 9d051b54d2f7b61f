# devstatusd — build, run, test. Every target installs the Debian packages it needs first.
SHELL := /bin/bash
APT_PACKAGES := libmosquitto-dev mosquitto mosquitto-clients libleveldb-dev
BENCH_PACKAGES := wrk nginx-light hyperfine
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
CONFIG ?= config.toml.example
PREFIX ?= /usr/local

.PHONY: all deps bench-deps test-deps build release run test test-browser test-openapi test-packaging bench fuzz install \
	install-files deb check-unit clean screenshots

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

# scripts/build-info.sh records the git revision and build date for `devstatusd --version` (a plain `swift build`
# works too and reports them as "unknown").
build: deps
	@scripts/build-info.sh
	swift build

release: deps
	@scripts/build-info.sh
	swift build -c release

# Starts a local mosquitto on 127.0.0.1:1883 when the configured broker is local and not listening,
# then runs the daemon in the foreground with $(CONFIG).
run: release
	scripts/run-local.sh $(CONFIG)

# Tests run in parallel: they wait for events (a message, a logged line, a state), not for time, and each
# integration test has its own broker, daemon, ports and directories. At most 6 at a time: unbounded, 70 daemons
# and brokers start at once on 2 cores and a cold first run starved some tests past their waits; 6 keeps the run as
# short (about 14 s) and passed every time under 3 busy loops of extra load. `swift test --no-parallel` runs them
# one at a time when a failure needs a quiet log.
# After the Swift tests: schemathesis against docs/openapi.json (test-openapi), the browser tests, and the Debian
# package is built, checked by lintian and installed into a scratch root.
test: test-deps check-unit
	@scripts/build-info.sh
	swift test --experimental-maximum-parallelization-width 6
	$(MAKE) --no-print-directory test-openapi
	$(MAKE) --no-print-directory test-browser
	$(MAKE) --no-print-directory test-packaging

# The dashboard in headless Chromium against the debug build, a real broker and daemon. Debian's python3, which
# has python3-selenium. The screenshots are taken into a temporary directory, so that a test run leaves the tree as
# it was (a package built after it is not "-dirty"); `make screenshots` writes the README's (docs/dashboard*.png).
test-browser: test-deps
	swift build
	shots=$$(mktemp -d /tmp/devstatusd-screenshots.XXXXXX); \
	/usr/bin/python3 Tests/Browser/dashboard_test.py "$$(swift build --show-bin-path)/devstatusd" --screenshots "$$shots"; \
	status=$$?; rm -rf "$$shots"; exit $$status

screenshots: test-deps
	swift build
	/usr/bin/python3 Tests/Browser/dashboard_test.py "$$(swift build --show-bin-path)/devstatusd" --screenshots docs

# docs/openapi.json against the live daemon (debug build, a real mosquitto): checked by openapi-spec-validator, then
# schemathesis runs every check with a bounded, deterministic set of cases (about a minute); any failure fails the
# target. Settings and the few exceptions, each with its reason, are in Tests/OpenAPI/schemathesis.toml. Both tools
# come from PyPI at pinned versions, into a virtual environment under .build-openapi/ made when missing.
OPENAPI_VENV := .build-openapi/venv
OPENAPI_PYTHON_PACKAGES := schemathesis==4.32.5 openapi-spec-validator==0.9.0
test-openapi: test-deps
	@if ! $(OPENAPI_VENV)/bin/python -c 'import importlib.metadata as m, sys; \
	  sys.exit(any(m.version(n) != v for n, v in (p.split("==") for p in sys.argv[1:])))' $(OPENAPI_PYTHON_PACKAGES) 2>/dev/null; then \
	  echo "installing into $(OPENAPI_VENV): $(OPENAPI_PYTHON_PACKAGES)"; \
	  python3 -m venv $(OPENAPI_VENV) && $(OPENAPI_VENV)/bin/pip install -q $(OPENAPI_PYTHON_PACKAGES); \
	fi
	swift build
	$(OPENAPI_VENV)/bin/python Tests/OpenAPI/schemathesis_test.py "$$(swift build --show-bin-path)/devstatusd"

# What the tests use beyond the daemon's own packages: promtool (prometheus) checks /metrics; dpkg-dev and lintian
# build and check the package.
# chromium, its driver and python3-selenium run the dashboard's browser tests (Tests/Browser); a font to draw text.
# python3-venv makes the environment test-openapi installs schemathesis into.
TEST_PACKAGES := prometheus lintian dpkg-dev chromium chromium-driver python3 python3-selenium python3-venv fonts-dejavu-core
test-deps: deps
	@missing=""; for p in $(TEST_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

test-packaging: deb
	scripts/test-deb.sh "$(DEB)"

# The fault suite alone (also part of `make test`): kill -9 during a status stream and after 201s, the broker
# killed, a full disk (a tmpfs it mounts: needs root), a corrupted table file, malformed payloads. A few minutes.
chaos: deps
	swift test --no-parallel --filter 'IntegrationTests.ChaosTests|StorageTests.StorageFaultTests|IntegrationTests.MalformedTimeTests|IntegrationTests.WatchdogPersistenceTests'

bench: bench-deps release
	scripts/bench.sh

fuzz: deps
	Fuzz/run.sh

# The service: binary, systemd unit, man page, shell completions (bash, zsh, fish) and /etc/devstatusd/config.toml
# from the example (an existing one is never overwritten). DESTDIR stages it elsewhere; SYSTEMD_UNIT_DIR=/lib/systemd/system
# for packages.
UNIT := packaging/devstatusd.service
SYSTEMD_UNIT_DIR ?= /etc/systemd/system
MAN_DIR ?= $(PREFIX)/share/man/man8
BASH_COMPLETION_DIR ?= $(PREFIX)/share/bash-completion/completions
ZSH_COMPLETION_DIR ?= $(PREFIX)/share/zsh/site-functions
FISH_COMPLETION_DIR ?= $(PREFIX)/share/fish/vendor_completions.d
BINARY ?= $(shell swift build -c release --show-bin-path)/devstatusd

install: release
	$(MAKE) --no-print-directory install-files
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
	@echo "installed; start it with: systemctl enable --now devstatusd"

# What `install` and `deb` copy, from an already built $(BINARY).
install-files:
	install -D -m 0755 "$(BINARY)" "$(DESTDIR)$(PREFIX)/bin/devstatusd"
	install -d -m 0755 "$(DESTDIR)$(SYSTEMD_UNIT_DIR)" "$(DESTDIR)/etc/devstatusd" "$(DESTDIR)$(MAN_DIR)" \
	  "$(DESTDIR)$(BASH_COMPLETION_DIR)" "$(DESTDIR)$(ZSH_COMPLETION_DIR)" "$(DESTDIR)$(FISH_COMPLETION_DIR)"
	sed 's#/usr/local/bin/devstatusd#$(PREFIX)/bin/devstatusd#' $(UNIT) > "$(DESTDIR)$(SYSTEMD_UNIT_DIR)/devstatusd.service"
	chmod 0644 "$(DESTDIR)$(SYSTEMD_UNIT_DIR)/devstatusd.service"
	install -m 0644 docs/devstatusd.8 "$(DESTDIR)$(MAN_DIR)/devstatusd.8"
	"$(BINARY)" --generate-completion-script bash | sed '1{/^#!/d}' > "$(DESTDIR)$(BASH_COMPLETION_DIR)/devstatusd"
	"$(BINARY)" --generate-completion-script zsh > "$(DESTDIR)$(ZSH_COMPLETION_DIR)/_devstatusd"
	"$(BINARY)" --generate-completion-script fish > "$(DESTDIR)$(FISH_COMPLETION_DIR)/devstatusd.fish"
	chmod 0644 "$(DESTDIR)$(BASH_COMPLETION_DIR)/devstatusd" "$(DESTDIR)$(ZSH_COMPLETION_DIR)/_devstatusd" \
	  "$(DESTDIR)$(FISH_COMPLETION_DIR)/devstatusd.fish"
	@if [ -e "$(DESTDIR)/etc/devstatusd/config.toml" ]; then \
	  echo "kept the existing $(DESTDIR)/etc/devstatusd/config.toml (the new example is config.toml.example)"; \
	else \
	  install -m 0644 config.toml.example "$(DESTDIR)/etc/devstatusd/config.toml"; \
	fi

# A Debian package built with dpkg-deb (no debian/ source tree): the binary with the Swift runtime linked in
# statically (so the toolchain is not needed where it is installed), the unit, the man page, the completions, and
# /etc/devstatusd/config.toml as a conffile. Checked by lintian (no errors allowed).
DEB_VERSION := $(shell sed -n 's/.*static let string = "\(.*\)".*/\1/p' Sources/DeviceStatus/Version.swift)
DEB_ARCH := $(shell dpkg --print-architecture 2>/dev/null)
DEB := .build-deb/devstatusd_$(DEB_VERSION)_$(DEB_ARCH).deb

deb: test-deps
	@scripts/build-info.sh
	swift build -c release --static-swift-stdlib
	scripts/make-deb.sh "$(DEB)" "$(DEB_VERSION)"

# systemd-analyze verify, and security --offline=yes at most 2.5 "exposure" (its --threshold counts tenths).
# ExecStart is pointed at an existing binary so that verify does not need an installed devstatusd.
UNIT_MAX_EXPOSURE := 25
check-unit:
	@if ! command -v systemd-analyze >/dev/null; then echo "check-unit: systemd-analyze not found: unit not checked"; exit 0; fi; \
	set -eo pipefail; dir=$$(mktemp -d); trap 'rm -rf "$$dir"' EXIT; \
	sed "s#^ExecStart=/usr/local/bin/devstatusd#ExecStart=$$(command -v true)#" $(UNIT) > "$$dir/devstatusd.service"; \
	systemd-analyze verify --man=no "$$dir/devstatusd.service"; \
	systemd-analyze security --offline=yes --threshold=$(UNIT_MAX_EXPOSURE) "$$dir/devstatusd.service" | tail -n 1; \
	if command -v groff >/dev/null; then groff -man -Tutf8 -ww -z docs/devstatusd.8; fi; \
	echo "check-unit: $(UNIT) verified; docs/devstatusd.8 formats cleanly"

clean:
	rm -rf .build .build-*
