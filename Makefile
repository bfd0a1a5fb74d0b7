# Entry points: `make image` builds debian-slim, `make test` runs every test. Both install what they need
# on a Debian or Ubuntu machine (apt packages, then a virtualenv in .venv).
# The virtualenv's interpreter: the distribution's Python (`deps` installs it), as on a freshly installed machine,
# whatever else PATH finds first (a Python built without the distribution's optimizations ran a warm build a quarter
# slower, and a newer 3.11 hides what the distribution's lacks); PYTHON=... picks another.
PYTHON ?= $(if $(wildcard /usr/bin/python3),/usr/bin/python3,python3)
VENV ?= .venv
RECIPE ?= debian-slim
ARGS ?=
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Tests run on every core (pytest-xdist); each end-to-end module stays on one worker, so that its builds are made
# once (tests/conftest.py marks it an xdist_group), while unit tests are spread one by one.
WORKERS ?= auto
XDIST := -n $(WORKERS) --dist loadgroup
# Unit tests alone wait on subprocesses, servers and clocks more than on a core: twice as many workers as cores
# (on 2 cores, 55 s against 60 s with three and 67 s with two), each taking the next test as it frees (no test of
# theirs shares a build with another).
UNIT_WORKERS ?= $(shell echo $$(( $$(nproc) * 2 )))
# Every test process (the workers, each `bootstrap` a test runs) reads bootstrap and the tests as cached bytecode:
# with PYTHONDONTWRITEBYTECODE set in the caller's environment, each of them would compile every module again,
# pytest's assertion rewrites included (a quarter of `make unit`'s CPU time on 2 cores).
BYTECODE := PYTHONDONTWRITEBYTECODE=

RUN_DEBS := python3 python3-venv python3-pip ca-certificates gpgv debian-archive-keyring uidmap distro-info-data rpm
TEST_DEBS := $(RUN_DEBS) gpg dpkg-dev debootstrap docker.io skopeo umoci docker-registry apache2-utils \
	openssl mmdebstrap diffoscope-minimal qemu-user-static binfmt-support podman debuerreotype wget zstd \
	createrepo-c dnf libsolv-tools libcap2-bin

.PHONY: image doctor test unit e2e faults lint bench deps test-deps clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

deps:
	./scripts/apt-install $(RUN_DEBS)

test-deps:
	./scripts/apt-install $(TEST_DEBS)

image: deps $(VENV)/.installed
	$(VENV)/bin/bootstrap $(RECIPE) $(ARGS)

doctor: $(VENV)/.installed
	$(VENV)/bin/bootstrap doctor

test: test-deps $(VENV)/.installed
	./scripts/ensure-docker
	./scripts/ensure-binfmt
	$(SUDO) env CI=$(CI) $(BYTECODE) $(VENV)/bin/python -m pytest tests $(XDIST) $(PYTEST_ARGS)

# The fault-injection suite alone (it is part of `make test` too): a table of every case, then `N passed, N failed`.
faults: test-deps $(VENV)/.installed
	$(SUDO) env CI=$(CI) $(BYTECODE) $(VENV)/bin/python -m pytest tests/faults $(XDIST) $(PYTEST_ARGS)

unit: $(VENV)/.installed
	env $(BYTECODE) $(VENV)/bin/python -m pytest tests -m 'not e2e' -n $(UNIT_WORKERS) --dist worksteal $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check bootstrap tests bench
	$(VENV)/bin/mypy bootstrap bench tests

bench: test-deps $(VENV)/.installed
	./scripts/ensure-binfmt
	$(SUDO) $(VENV)/bin/python -m bench $(ARGS)

clean:
	rm -rf $(VENV) dist .pytest_cache .mypy_cache .ruff_cache
