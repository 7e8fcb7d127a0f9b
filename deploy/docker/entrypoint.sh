#!/bin/sh
# Entry point of the Guichet image: runs `guichet "$@"`, but refuses `serve` without an
# external Valkey. The embedded Valkey would keep the data inside the container, lost with
# it, and each replica would have its own: never what a deployment wants.
set -eu
if [ "${1:-}" = "serve" ] \
    && [ -z "${GUICHET_REDIS_URL:-}" ] && [ -z "${GUICHET_REDIS_CLUSTER_SEEDS:-}" ]; then
    echo "guichet-entrypoint: set GUICHET_REDIS_URL (redis://[:password@]host:port/0) or" \
        "GUICHET_REDIS_CLUSTER_SEEDS ([:password@]host:port,...); the image does not run" \
        "the embedded Valkey" >&2
    exit 2
fi
exec guichet "$@"
