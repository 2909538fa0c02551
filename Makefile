# Hearth: the two commands a newcomer needs are `make run` and `make test` (see README.md).
.PHONY: run test deps models build build-asan build-tsan test-unit test-python test-asan test-tsan fuzz bench clean

BUILD      ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
FUZZ_BUILD ?= build-fuzz
JOBS       ?= $(shell nproc)
PY         := .venv/bin/python
FUZZ_SECONDS ?= 30

# Set up everything, then chat with the default model.
run: deps models build
	./$(BUILD)/hearth run

# Set up everything, then run every test: unit tests, reference tests against llama.cpp /
# NumPy / jinja2 goldens, the same unit tests under AddressSanitizer + UBSan, the threaded
# ones under ThreadSanitizer, fuzz smoke runs.
test: deps models build test-unit test-python test-asan test-tsan fuzz

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

# ThreadSanitizer over the code that shares state between threads: the thread pool and the
# server's scheduler. Only their test executables are built, so it stays quick.
TSAN_TARGETS := test_platform_thread_pool_test test_platform_thread_pool_items_test \
  test_app_server_scheduler_test
TSAN_TESTS   := ^(ThreadPool|ThreadPoolItems|SchedulerInvariants)\.

build-tsan:
	cmake -S . -B $(TSAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHEARTH_SANITIZE=thread
	cmake --build $(TSAN_BUILD) -j $(JOBS) --target $(TSAN_TARGETS)

test-tsan: build-tsan
	cd $(TSAN_BUILD) && TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
	  ctest --output-on-failure -j $(JOBS) -R '$(TSAN_TESTS)'

# libFuzzer targets (clang), each run for FUZZ_SECONDS from its seed corpus.
fuzz:
	cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHEARTH_FUZZ=ON \
	  -DHEARTH_TESTS=OFF -DCMAKE_CXX_COMPILER=clang++
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzz_gguf fuzz_chat_template fuzz_server_request fuzz_config fuzz_json_constraint
	./scripts/run_fuzzers.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD)
