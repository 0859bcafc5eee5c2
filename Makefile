# Northstar: the two commands of the README.
#   make run   install what is missing, build Release, start the server on ./data (demo data on first start)
#   make test  install what is missing, build, run every test through ctest
# Both build the web console (web/, npm + Vite) into web/dist, which the server serves at /.
BUILD ?= build
DATA ?= ./data
JOBS ?= $(shell nproc)

.PHONY: run test build build-server console setup configure clean bench

setup:
	@bash scripts/setup.sh

configure: setup
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

# Only the server binary: `make run` need not compile the tests.
build-server: configure
	@cmake --build $(BUILD) -j $(JOBS) --target northstar

# The web console: npm ci (when the lockfile changed) and vite build (when a source did).
console: setup
	@bash scripts/build_console.sh

run: build-server console
	$(BUILD)/northstar serve --data $(DATA) --host 127.0.0.1 --port 8080 --demo

test: build console
	cd $(BUILD) && ctest --output-on-failure -j 2 --timeout 900

bench: build
	@bash bench/run_bench.sh

clean:
	rm -rf $(BUILD)
