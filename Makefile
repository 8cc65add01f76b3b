# Paved's entry points. `make dev` runs Paved on its local control plane with
# the examples applied; `make test` runs every test (unit, then e2e against the
# real local control plane). See README.md.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
CARGO ?= cargo

.PHONY: build test unit e2e dev dev-down cluster-build cluster-up cluster-down cluster-stats crds bench fmt lint

build:
	$(CARGO) build --bin paved

## test: everything CI runs — unit tests (with the crds/ drift check), then e2e.
test: unit e2e

unit:
	$(CARGO) test --bins --lib

e2e:
	e2e/run.sh

## dev: local control plane + CRDs + controller + examples, then the catalog.
dev:
	e2e/dev.sh

dev-down:
	e2e/dev.sh --down

cluster-build:
	e2e/cluster/build.sh

cluster-up:
	@e2e/cluster/up.sh

cluster-down:
	e2e/cluster/down.sh

## crds: regenerate crds/ from the API types (the unit tests fail when it drifts).
crds:
	$(CARGO) run --quiet --bin paved -- crd --out-dir crds

bench:
	e2e/bench.sh

fmt:
	$(CARGO) fmt

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
cluster-stats:
	e2e/cluster/stats.sh
