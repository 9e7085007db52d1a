# lanegate — the two commands: `make demo` and `make test`. Each installs missing Debian
# packages (scripts/install-deps), configures, builds and runs. Everything else is here too.
BUILD        ?= build
FUZZ_BUILD   ?= build-fuzz
BUILD_TYPE   ?= RelWithDebInfo
JOBS         ?= $(shell nproc)
FUZZ_SECONDS ?= 30
PREFIX       ?= /usr/local

.PHONY: all deps configure build test demo bench fuzz install clean format

all: build

deps:
	@scripts/install-deps

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DCMAKE_INSTALL_PREFIX=$(PREFIX)

configure: deps $(BUILD)/build.ninja

build: configure
	cmake --build $(BUILD) -j $(JOBS)

# Unit, integration and script tests, ending in the ctest summary.
test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 600

# Runs the main job on the embedded simulated world.
demo: build
	scripts/demo $(BUILD)

# Benchmarks print figures and ratios; they assert nothing (shared machines are noisy).
bench: build
	scripts/bench $(BUILD)

# Every libFuzzer target, each for FUZZ_SECONDS, in a separate clang build.
fuzz: deps
	scripts/fuzz $(FUZZ_BUILD) $(FUZZ_SECONDS)

install: build
	cmake --install $(BUILD)

format:
	clang-format -i $$(git ls-files '*.cc' '*.h')

clean:
	rm -rf $(BUILD) $(FUZZ_BUILD)
