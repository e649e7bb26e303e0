# synthmon container image. Build: docker build -t synthmon .
# Run:  docker run --rm -p 9321:9321 --stop-timeout 30 --shm-size 1g \
#         -v "$PWD/synthmon.toml:/etc/synthmon/synthmon.toml:ro" \
#         -v "$PWD/journeys:/etc/synthmon/journeys:ro" \
#         -v synthmon-data:/var/lib/synthmon synthmon
# docs/deploy.md explains every choice below.
#
# Versions that move together. The runtime is Debian's Chromium driven by the Python
# `playwright` package (pinned in requirements.lock), so when bumping:
#   1. DEBIAN_RELEASE: the Debian release of the python slim image; its `chromium`
#      package (security-updated within the release) is the browser we ship.
#   2. PYTHON_VERSION: the python:<version>-slim-<release> tag (synthmon needs 3.11+).
#   3. playwright in requirements.lock: a Playwright release supports the Chromium
#      major version current at its release and a few after; after bumping either,
#      run the browser tests (`make test`) against the new `chromium --version`.
# The CI machine runs the same Debian release (12), so its chromium matches the image's.
ARG PYTHON_VERSION=3.11
ARG DEBIAN_RELEASE=bookworm

# --- build: the wheel ------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# pip runs the PEP 517 backend (hatchling, from pyproject's build-system) in an
# isolated environment: nothing else is needed to build.
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

# --- runtime: the wheel, Chromium, fonts, tini; no compilers ---------------------
FROM python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE} AS runtime

# Package versions come from the pinned Debian release: exact versions of chromium
# leave the mirror with each security update, so pinning them would break rebuilds.
# Rebuild the image regularly to pick up Chromium security fixes. libatomic1: the
# Node.js binary inside the playwright wheel (its driver) links libatomic.so.1, which
# the slim base lacks; without it every browser journey fails "browser_unavailable".
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      chromium \
      fonts-liberation \
      fonts-noto-color-emoji \
      fonts-noto-cjk \
      libatomic1 \
      tini \
 && rm -rf /var/lib/apt/lists/*

# A fixed UID/GID so volume permissions and Kubernetes runAsUser/fsGroup agree.
RUN groupadd --system --gid 10001 synthmon \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/synthmon \
      --shell /usr/sbin/nologin synthmon \
 && install -d -o synthmon -g synthmon -m 0750 /var/lib/synthmon \
 && install -d -m 0755 /etc/synthmon /etc/synthmon/journeys

COPY requirements.lock /tmp/requirements.lock
COPY --from=build /dist/ /tmp/dist/
# The lock file pins every dependency (as constraints: only what the wheel needs is
# installed). Then drop pip's cache and the wheel.
RUN pip install --no-cache-dir -c /tmp/requirements.lock /tmp/dist/*.whl \
 && rm -rf /tmp/dist /tmp/requirements.lock

# The image's mount points. Config and journeys are read-only mounts, secrets come
# from /run/secrets (Docker and Kubernetes secrets), results and artifacts go to the
# data volume. Inside a container the status server must listen on all interfaces.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/var/lib/synthmon \
    SYNTHMON_JOURNEYS_DIR=/etc/synthmon/journeys \
    SYNTHMON_DATA_DIR=/var/lib/synthmon \
    SYNTHMON_SERVER__LISTEN=0.0.0.0:9321
VOLUME ["/var/lib/synthmon"]
WORKDIR /var/lib/synthmon
USER 10001:10001
EXPOSE 9321

# Checks the process answers at all (liveness); readiness is /readyz, for Kubernetes.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["synthmon", "healthcheck", "--config", "/etc/synthmon/synthmon.toml"]

# SIGTERM starts the ordered shutdown: in-flight runs get scheduler.shutdown_grace
# (default 20 s), then sinks drain (up to 5 s). Give the container at least 30 s:
# `docker run --stop-timeout 30`, compose `stop_grace_period: 30s`, Kubernetes
# `terminationGracePeriodSeconds: 30`. Raise these with shutdown_grace.
STOPSIGNAL SIGTERM
# tini is PID 1: it forwards signals and reaps Chromium's orphaned children.
ENTRYPOINT ["/usr/bin/tini", "--", "synthmon"]
CMD ["run", "--config", "/etc/synthmon/synthmon.toml"]
