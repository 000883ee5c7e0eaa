#!/usr/bin/env bash
# Runs Homerun on this machine in standalone mode, setting up what is missing first
# (a virtualenv with Homerun installed). Idempotent. Run as root. Stop it with Ctrl-C.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
ensure_venv ""
exec "$VENV/bin/homerun" standalone "$@"
