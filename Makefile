# Paved's entry points. `make dev` runs Paved on its local control plane with
# the examples applied; `make test` runs every test (unit, then e2e against the
# real local control plane). See README.md.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
CARGO ?= cargo

.PHONY: build test unit scripts e2e faults chart upgrade image dev dev-down screenshot cluster-build cluster-up cluster-down cluster-stats crds bench bench-scale fmt lint

build:
	$(CARGO) build --bin paved

## test: everything CI runs — unit tests (with the crds/ drift check), the
## cluster scripts' cold start, then the e2e tests, then the fault tests
## (failover, split brain, control-plane outages), then the Helm chart's proof
## (install, upgrade, RBAC sufficient and minimal, upgrade from the previous release).
test: unit scripts e2e faults chart

unit:
	$(CARGO) test --bins --lib

## scripts: on an empty cache with a stub go, the cluster scripts print on
## stdout only what their callers capture (the kubeconfig path, kubectl's path).
scripts:
	e2e/cluster/test-cold-start.sh

e2e:
	e2e/run.sh

## faults: leader failover, the split-brain test, API server and etcd outages
## (e2e/faults.rs, run alone: they start and stop controller replicas).
faults:
	e2e/faults.sh

## dev: local control plane + CRDs + controller + examples, then the catalog.
dev:
	e2e/dev.sh

dev-down:
	e2e/dev.sh --down

## screenshot: regenerate docs/catalog-overview.png (the README's picture of
## the catalog page) from `make dev` and headless Chromium.
screenshot:
	e2e/screenshot.sh

cluster-build:
	e2e/cluster/build.sh

cluster-up:
	@e2e/cluster/up.sh

cluster-down:
	e2e/cluster/down.sh

## crds: regenerate crds/ from the API types, and the chart's copy of them
## (the unit tests fail when either drifts).
crds:
	$(CARGO) run --quiet --bin paved -- crd --out-dir crds
	rm -f charts/paved/files/crds/*.yaml
	cp crds/*.yaml charts/paved/files/crds/

## chart: lint, install and upgrade the Helm chart on the local control plane, and
## prove its RBAC sufficient and minimal; then the upgrade from the previous release.
chart:
	e2e/chart.sh
	e2e/upgrade.sh

## upgrade: chart, CRDs and controller from the release in e2e/upgrade-from to
## this checkout (nothing recreated or rolled), and the controller back.
upgrade:
	e2e/upgrade.sh

## image: the static binary and the container image (buildah), with the 40 MB budget.
image:
	e2e/image.sh

bench:
	e2e/bench.sh

## bench-scale: one controller at 100, 1,000 and 10,000 Services (PAVED_SCALE_SIZES):
## converge time against the direct and floor phases, memory per Service, a
## restart, an idle window, change latency and watches; JSON and a PNG chart
## (see README.md, Performance). Every phase on a fresh cluster of its own (a
## running one is refused). About an hour on 2 cores; not part of `make test`.
bench-scale:
	e2e/bench-scale.sh

fmt:
	$(CARGO) fmt

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
cluster-stats:
	e2e/cluster/stats.sh
