# The README's two commands. Both install what they need first (tools/bootstrap.sh).
.PHONY: up test lint crds bootstrap images

PYTEST_ARGS ?=
# Where `make up` keeps the cluster's state, its logs and the env file it writes.
UP_WORKDIR ?= $(CURDIR)/.switchboard

bootstrap:
	@tools/bootstrap.sh

## Build the container images (cached by content in ~/.cache/switchboard/images).
images: bootstrap
	.venv/bin/switchboard-dev images

## Bring up Switchboard on the embedded local cluster with examples/ applied and the demo page.
up: bootstrap images
	PATH="$(CURDIR)/.venv/bin:$$PATH" .venv/bin/switchboard-dev up --workdir "$(UP_WORKDIR)"

## Run the whole test suite (inside a loopback-only network namespace, which has no
## package registry: the images are built first).
test: bootstrap images
	PATH="$(CURDIR)/.venv/bin:$$PATH" tools/in-netns.sh .venv/bin/python -m pytest $(PYTEST_ARGS)

lint: bootstrap
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/lint-imports

crds: bootstrap
	.venv/bin/switchboard-crds
