# The project's front door. `make demo` runs the system; `make test` proves it.
# Both install what they need and start a genuine Kafka broker, mongod and Keycloak (scripts/infra.sh).

SHELL := /bin/bash
UV := uv
PYTEST_ARGS ?=

.PHONY: help setup up down status lint test test-any-date test-unit test-integration test-e2e demo docs bench

help:
	@echo "make demo   - run the services on a real Kafka + MongoDB and play a scenario"
	@echo "make test   - run every test tier against a real Kafka + MongoDB"
	@echo "make lint   - ruff check, ruff format --check and mypy: no finding allowed"
	@echo "make test-any-date - the whole suite with the clock a year ahead (FAKETIME_SHIFT)"
	@echo "make up / down / status - the local Kafka broker, mongod and Keycloak"
	@echo "make up TRACING=1 - and a Jaeger v2 trace collector (built with Go the first time; UI http://127.0.0.1:16686)"
	@echo "make docs   - write the AsyncAPI documents under docs/asyncapi/ and the adapters' request schema"

setup:
	@bash scripts/setup.sh

# TRACING=1 (`make up TRACING=1`, `make demo TRACING=1`): also the trace collector, Jaeger v2
# (deploy/jaeger/config.yaml), built with Go the first time. `down` and `status` include it anyway.
TRACING ?=

up: setup
	@TRACING="$(TRACING)" bash scripts/infra.sh up

down:
	@bash scripts/infra.sh down

status:
	@bash scripts/infra.sh status

# Static checks, no server needed; configured in pyproject.toml ([tool.ruff], [tool.mypy]).
# All three run, so one run shows every finding; any finding fails.
lint: setup
	@status=0; \
	$(UV) run ruff check . || status=1; \
	$(UV) run ruff format --check . || status=1; \
	$(UV) run mypy || status=1; \
	exit $$status

# `up` started the identity provider (or OIDC_ISSUER names one): a test that needs it must fail, not skip.
test: up
	@bash scripts/setup.sh --browser
	KEYCLOAK_REQUIRED=1 $(UV) run pytest $(PYTEST_ARGS)

# The whole suite with the tests' and services' clock a year ahead (libfaketime; the servers keep
# the real time): a test that passes only this month is a bug. FAKETIME_SHIFT=+3650d for ten years.
FAKETIME_SHIFT ?= +365d
# Kafka 4 refuses records stamped over an hour ahead of the broker's clock: for this run only, the
# local broker accepts the skew a machine whose whole date moved would not have (scripts/kafka_clock_skew.py).
# Keycloak signs tokens with its own clock: it runs shifted too for this run, then is restarted on real time.
test-any-date: up
	@command -v faketime >/dev/null || bash -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq faketime'
	@$(UV) run --no-sync python -m scripts.kafka_clock_skew allow
	@[[ -n "$${OIDC_ISSUER:-}" ]] || KEYCLOAK_FAKETIME="$(FAKETIME_SHIFT)" bash scripts/infra.sh restart-keycloak
	@status=0; \
	KEYCLOAK_REQUIRED=1 FAKETIME_FORCE_MONOTONIC_FIX=1 faketime -f "$(FAKETIME_SHIFT)" $(UV) run --no-sync pytest $(PYTEST_ARGS) || status=$$?; \
	$(UV) run --no-sync python -m scripts.kafka_clock_skew restore; \
	[[ -n "$${OIDC_ISSUER:-}" ]] || bash scripts/infra.sh restart-keycloak; \
	exit $$status

test-unit: setup
	$(UV) run pytest -m unit $(PYTEST_ARGS)

test-integration: up
	KEYCLOAK_REQUIRED=1 $(UV) run pytest -m integration $(PYTEST_ARGS)

test-e2e: up
	KEYCLOAK_REQUIRED=1 $(UV) run pytest -m e2e $(PYTEST_ARGS)

demo: up
	$(UV) run python -m scripts.demo

docs: setup
	$(UV) run python -m scripts.asyncapi docs/asyncapi
	$(UV) run python -m scripts.adapter_kit docs/adapters

# Figures with same-run baselines on the real broker and mongod: reports/bench.md and reports/bench.json.
BENCH_ARGS ?=
bench: up
	$(UV) run python -m bench $(BENCH_ARGS)
