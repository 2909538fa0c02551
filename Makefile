# Hearth: the two commands a newcomer needs are `make run` and `make test` (see README.md).
.PHONY: run test deps models build build-asan test-unit test-python test-asan fuzz bench clean

BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
JOBS       ?= $(shell nproc)
PY         := .venv/bin/python
FUZZ_SECONDS ?= 30

# Set up everything, then chat with the default model.
run: deps models build
	./$(BUILD)/hearth run

# Set up everything, then run every test: unit tests, reference tests against llama.cpp /
# NumPy / jinja2 goldens, the same unit tests under AddressSanitizer + UBSan, fuzz smoke runs.
test: deps models build test-unit test-python test-asan fuzz

deps:
	./scripts/setup.sh

models: deps
	$(PY) scripts/fetch_models.py

build:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BUILD) -j $(JOBS)

test-unit: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-python: build
	HEARTH_BIN=$(abspath $(BUILD))/hearth $(PY) -m pytest -q tests/python

build-asan:
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHEARTH_SANITIZE=address,undefined
	cmake --build $(ASAN_BUILD) -j $(JOBS)

test-asan: build-asan
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j $(JOBS)

# libFuzzer targets (clang), each run for FUZZ_SECONDS from its seed corpus.
fuzz:
	cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHEARTH_FUZZ=ON \
	  -DHEARTH_TESTS=OFF -DCMAKE_CXX_COMPILER=clang++
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzz_gguf fuzz_chat_template fuzz_server_request fuzz_config fuzz_json_constraint
	./scripts/run_fuzzers.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
