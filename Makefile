# A thin layer over the scripts and CMake presets; every target does its own set-up.
#   make run     install what is missing, start MariaDB + Redis under var/, build, migrate,
#                seed, print a demo token, serve on 127.0.0.1:8080 (Ctrl-C stops it)
#   make test    the same set-up, then every test under ASan + UBSan; ends "N passed, N failed"
#   make bench   the load suite against one instance and a 3-instance cluster, the ceilings, the
#                sweep and the profile; writes docs/PERFORMANCE.md and docs/perf/*.png (about 50 min)
#   make cluster N=3   N `shopd serve` + nginx on 127.0.0.1:8080 + `shopd platform`, detached;
#                make cluster-down stops them (scripts/cluster.sh, by pid)
#   make chaos   the fault-injection suite against a 3-instance cluster; writes docs/RELIABILITY.md
#   make test-ha the integration suites on a 3-node Galera cluster and a Sentinel failover, then
#                the fault suite on Galera + Sentinel (the writer node, an instance, the Redis
#                master killed under load); writes docs/RELIABILITY-HA.md (about 5 min)
#   make cluster-ha N=3   the same cluster on Galera (3 nodes) and Redis Sentinel, detached;
#                make cluster-ha-down stops it all (scripts/cluster-ha.sh, by pid)
#   make fuzz    every libFuzzer target for 10 million executions; figures in docs/RELIABILITY.md
JOBS ?= $(shell nproc)
N ?= 3

.PHONY: all deps services services-down status build debug asan run test test-ha bench chaos fuzz cluster cluster-down cluster-ha cluster-ha-down format clean

all: build

deps:
	@scripts/deps.sh

services: deps
	@scripts/services.sh up

services-down:
	@scripts/services.sh down

status:
	@scripts/services.sh status

build: deps
	@cmake --preset release >/dev/null
	@cmake --build build/release -j$(JOBS) --target shopd
	@ln -sfn release/shopd build/shopd

debug: deps
	@cmake --preset debug >/dev/null
	@cmake --build build/debug -j$(JOBS)

asan: deps
	@cmake --preset asan >/dev/null
	@cmake --build build/asan -j$(JOBS)

run: services build
	@scripts/run.sh

test: services
	@scripts/test.sh

bench: services build
	@scripts/bench.sh

chaos: services build
	@scripts/chaos.sh

test-ha: services build
	@scripts/test-ha.sh

fuzz: deps
	@scripts/fuzz.sh

cluster: services build
	@PLATFORM_LISTEN=$${PLATFORM_LISTEN-127.0.0.1:8090} scripts/cluster.sh up $(N)

cluster-down:
	@scripts/cluster.sh down

cluster-ha: build
	@scripts/cluster-ha.sh up $(N)

cluster-ha-down:
	@scripts/cluster-ha.sh down

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build
