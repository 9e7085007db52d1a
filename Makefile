# lanegate — the two commands: `make demo` and `make test`. Each installs missing Debian
# packages (scripts/install-deps), configures, builds and runs. Everything else is here too.
BUILD        ?= build
FUZZ_BUILD   ?= build-fuzz
SAN_BUILD    ?= build-san
BUILD_TYPE   ?= RelWithDebInfo
JOBS         ?= $(shell nproc)
FUZZ_SECONDS ?= 30
# Per fuzz target inside `make test` (two run at once on a 2-core CI machine).
TEST_FUZZ_SECONDS ?= 20
PREFIX       ?= /usr/local

.PHONY: all deps configure build test sanitize demo chaos bench fuzz install clean format fleet-cluster

all: build

deps:
	@scripts/install-deps

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DCMAKE_INSTALL_PREFIX=$(PREFIX)

configure: deps $(BUILD)/build.ninja

build: configure
	cmake --build $(BUILD) -j $(JOBS)

# 1. unit, integration and script tests on the plain (GCC) build;
# 2. scripts/sanitize: one clang ASan+UBSan build, its unit and integration tests, then
#    every fuzz target for TEST_FUZZ_SECONDS from its committed corpus.
# Any failure, sanitizer report or fuzz crash fails `make test`.
test: build
	@start=$$(date +%s); cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 600; \
	  rc=$$?; echo "test: plain ctest took $$(( $$(date +%s) - start )) s"; exit $$rc
	JOBS=$(JOBS) scripts/sanitize $(SAN_BUILD) $(TEST_FUZZ_SECONDS)

# Just the sanitizer half of `make test`, with the longer FUZZ_SECONDS per target.
sanitize: deps
	JOBS=$(JOBS) scripts/sanitize $(SAN_BUILD) $(FUZZ_SECONDS)

# Runs the main job on the embedded simulated world.
demo: build
	scripts/demo $(BUILD)

# The full chaos run: random faults under traffic for 4 minutes (a 55 s version is in `make test`).
chaos: build
	scripts/chaos $(BUILD)

# The fleet's system of record on loopback: 3 etcd + 3 Patroni/PostgreSQL 15 nodes, synchronous
# replication on (docs/FLEET.md). `scripts/fleet-cluster stop|status|dsn|kill-leader` for the rest.
fleet-cluster: deps
	scripts/fleet-cluster start

# Benchmarks print figures and ratios; they assert nothing (shared machines are noisy).
bench: build
	scripts/bench $(BUILD)

# Every libFuzzer target, each for FUZZ_SECONDS, in a separate clang build (fuzz only).
fuzz: deps
	scripts/fuzz $(FUZZ_BUILD) $(FUZZ_SECONDS)

install: build
	cmake --install $(BUILD)

format:
	clang-format -i $$(git ls-files '*.cc' '*.h')

clean:
	rm -rf $(BUILD) $(FUZZ_BUILD) $(SAN_BUILD)
