#!/usr/bin/env bash
# Runs Homerun's whole test suite on this machine, setting up what is missing first:
# a virtualenv with the dev extras, PostgreSQL, Redis, Node.js, the Docker engine and the runtime
# images (built offline from Debian packages). Idempotent. Run as root.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
ensure_venv dev
ensure_postgres
ensure_redis
ensure_node
ensure_runtime_images
log "smoke: the README's run command, bash deploy/standalone.sh, in a throwaway copy"
bash "$ROOT/deploy/smoke.sh"
log "make check"
make check VENV="$VENV"
