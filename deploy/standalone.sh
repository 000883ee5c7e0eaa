#!/usr/bin/env bash
# Runs Homerun on this machine in standalone mode, setting up what is missing first (a
# virtualenv with Homerun installed, Node.js). `homerun standalone` then uses Docker when an
# engine answers, building the runtime images on first start, and the process sandbox
# otherwise. Idempotent. Run as root. Stop it with Ctrl-C.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
ensure_venv ""
ensure_node  # for nodejs actions when no container engine answers (the process sandbox)
exec "$VENV/bin/homerun" standalone "$@"
