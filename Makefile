# synthmon: `make run` and `make test` work on a fresh Debian machine with Python 3.11+.
# Python deps go into .venv, pinned by requirements.lock; Debian packages the tests
# need (chromium, prometheus, alertmanager) are installed with apt-get when missing.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_PORT ?= 8080
# Debian packages and the binary each provides.
APT_PACKAGES := chromium:chromium prometheus:prometheus prometheus-alertmanager:prometheus-alertmanager prometheus-blackbox-exporter:prometheus-blackbox-exporter fonts-liberation:
# tini: PID 1 of the container image; the entrypoint test runs the image's exact command.
APT_PACKAGES += tini:tini

# The demo shop's synthetic accounts (public demo values, see synthmon_demo/state.py),
# exported for `make run`, `make check` and `make container-check` because
# config.example.toml takes secrets from the environment only. Real deployments set
# these from a secret store.
DEMO_SECRETS := DEMO_SHOPPER1_PASSWORD=shopper1-pass DEMO_SHOPPER2_PASSWORD=shopper2-pass \
	DEMO_MFA_PASSWORD=mfa-pass DEMO_MFA_TOTP_SECRET=$$($(PY) -c 'from synthmon_demo import DEMO_TOTP_SECRET as s; print(s)')

.PHONY: setup venv system-deps run test lint typecheck check pytest bench bench-smoke soak lock clean screenshots

setup: venv system-deps

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "synthmon needs Python 3.11+"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]'
	touch $(STAMP)

# Installs only what is missing; needs root (CI runs as root). Without root it says
# what to install and carries on: browser/Prometheus tests then fail loudly.
system-deps:
	@missing=""; \
	for pair in $(APT_PACKAGES); do \
	  pkg=$${pair%%:*}; bin=$${pair#*:}; \
	  if [ -n "$$bin" ]; then command -v $$bin >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	  else dpkg -s $$pkg >/dev/null 2>&1 || missing="$$missing $$pkg"; fi; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "warning: missing Debian packages:$$missing (run: sudo apt-get install$$missing)"; fi; \
	fi

# The daemon with the example journeys against the bundled demo shop. Ctrl-C (or
# SIGTERM to the process group) stops both.
run: setup
	@trap 'kill $$demo 2>/dev/null; wait $$demo 2>/dev/null' EXIT INT TERM; \
	$(PY) -m synthmon_demo --host 127.0.0.1 --port $(DEMO_PORT) & demo=$$!; \
	if [ "$$(id -u)" = 0 ]; then export SYNTHMON_BROWSER__NO_SANDBOX=true; \
	  echo "make run as root: Chromium's sandbox is off (SYNTHMON_BROWSER__NO_SANDBOX=true)"; fi; \
	SYNTHMON_TARGETS__DEMO__BASE_URL=http://127.0.0.1:$(DEMO_PORT) $(DEMO_SECRETS) \
	  $(BIN)/synthmon run --config config.example.toml

lint: venv
	$(BIN)/ruff check src tests bench journeys scripts
	$(BIN)/ruff format --check src tests bench journeys scripts
	$(BIN)/vulture   # dead code in src/; [tool.vulture] in pyproject.toml, vulture_whitelist.py

typecheck: venv
	$(BIN)/mypy

check: venv
	$(DEMO_SECRETS) $(BIN)/synthmon check --config config.example.toml journeys

pytest: setup
	$(BIN)/pytest

test: setup lint typecheck check pytest

bench: setup
	$(PY) bench/run.py

# Every benchmark at the smallest sizes that still take its whole path (daemon built,
# runs finished, blackbox_exporter/Prometheus/Chromium started, figures printed), so
# none rots unseen: CI runs it after container-check (.ci/run). Fails when a bench
# fails, cannot be imported, prints no figures, or a bench/*.py is not registered in
# bench/run.py's BENCHES. Asserts no timing; its figures mean nothing.
bench-smoke: setup
	$(PY) bench/run.py --smoke

# The status page and a failing journey's page at desktop and phone width, into
# docs/images/ (README.md shows them). tests/status/ runs the script so it cannot rot.
screenshots: setup
	$(PY) scripts/screenshots.py docs/images

# The daemon for SOAK_MINUTES with faults injected on a schedule (bench/soak.py): runs
# expected vs recorded, lag, RSS/FDs/Chromium, alerts expected vs delivered. Not in
# `make test`; `make bench` runs a 2-minute one so it cannot rot.
SOAK_MINUTES ?= 60
SOAK_HTTP ?= 40
SOAK_BROWSER ?= 2
soak: setup
	$(PY) bench/soak.py --minutes $(SOAK_MINUTES) --http $(SOAK_HTTP) --browser $(SOAK_BROWSER)

# The image's runtime stage without Docker: debootstrap + the Dockerfile's RUN lines in a
# chroot, then its ENTRYPOINT under tini as PID 1, the demo secrets passed as
# environment variables (scripts/container_check.py, docs/deploy.md). Needs root and
# the Debian mirror; minutes the first time, then cached layers in /var/tmp. CI runs
# it after `make test` (.ci/run).
.PHONY: container-check
container-check: venv
	command -v debootstrap >/dev/null || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; }
	$(DEMO_SECRETS) $(PY) scripts/container_check.py

# Re-pin after changing dependencies in pyproject.toml.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --disable-pip-version-check '.[dev]'
	.lock-venv/bin/pip freeze --exclude-editable | grep -v '^synthmon' > requirements.lock
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache build dist
