#!/usr/bin/env bash
# Builds Homerun's action runtime images with nothing but Debian's package archive: debootstrap a
# minimal root filesystem holding the language runtime, add the unprivileged user `action`
# (1000:1000) and the proxy (invoker/runtimes/<family>/), trim it and `docker import` it. Nothing
# is ever pulled from a registry.
#
#   deploy/runtimes/build.sh              every kind in controller/runtimes.json (or the file
#                                         named by HOMERUN_RUNTIMES_MANIFEST)
#   deploy/runtimes/build.sh nodejs:18    only these kinds
#   deploy/runtimes/build.sh --refresh    debootstrap again (newer Debian packages) and rebuild
#
# Idempotent: an image is tagged with a hash of this script, its proxy and its package list;
# when that tag exists only `:latest` is (re)pointed at it. The debootstrap result is cached
# under /var/cache/homerun/runtimes, so a rebuild after a proxy change takes seconds.
# Needs root and a reachable Docker engine (deploy/lib.sh: ensure_docker).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SUITE=bookworm
MIRROR=${HOMERUN_DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE=${HOMERUN_RUNTIME_CACHE:-/var/cache/homerun/runtimes}
MANIFEST=${HOMERUN_RUNTIMES_MANIFEST:-$ROOT/controller/runtimes.json} # as the controller reads it
ACTION_UID=1000

say() { printf '==> %s\n' "$*" >&2; }
die() { printf '==> error: %s\n' "$*" >&2; exit 1; }

# ---- what each family needs -----------------------------------------------------------------

packages_for() {
  case $1 in
    nodejs) echo "nodejs ca-certificates" ;;
    python) echo "python3 ca-certificates" ;;
    *) return 1 ;;
  esac
}

proxy_for() { echo "$ROOT/invoker/runtimes/$1/proxy.$([ "$1" = nodejs ] && echo js || echo py)"; }

command_for() {
  case $1 in
    nodejs) echo '["/usr/bin/node", "/homerun/proxy.js"]' ;;
    python) echo '["/usr/bin/python3", "-u", "/homerun/proxy.py"]' ;;
  esac
}

runtime_version() {
  # runtime_version FAMILY ROOTFS: the language version installed in the root filesystem.
  case $1 in
    nodejs) chroot "$2" /usr/bin/node -e 'process.stdout.write(process.versions.node)' ;;
    python) chroot "$2" /usr/bin/python3 -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' ;;
  esac
}

check_proxy_syntax() {
  # check_proxy_syntax FAMILY ROOTFS: parse the proxy with the image's own interpreter.
  case $1 in
    nodejs) chroot "$2" /usr/bin/node --check /homerun/proxy.js ;;
    python) chroot "$2" /usr/bin/python3 -c \
      'import ast, sys; ast.parse(open(sys.argv[1]).read(), sys.argv[1])' /homerun/proxy.py ;;
  esac
}

# ---- steps ----------------------------------------------------------------------------------

WORK=
cleanup() {
  [ -n "$WORK" ] && [ -d "$WORK" ] || return 0
  # A failed debootstrap can leave /proc and /sys mounted inside its target.
  awk -v w="$WORK/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r |
    while read -r mount; do umount -l "$mount" 2>/dev/null || true; done
  rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT

base_tarball() {
  # base_tarball PACKAGES...: path of the cached debootstrap result with these packages.
  local key tarball log
  key=$(printf '%s\n' "$SUITE" "$(dpkg --print-architecture)" "$@" | sha256sum | cut -c1-16)
  tarball=$CACHE/base-$SUITE-$key.tar
  [ -z "$REFRESH" ] || rm -f "$tarball"
  if [ ! -s "$tarball" ]; then
    command -v debootstrap >/dev/null || {
      say "installing debootstrap"
      apt-get update -qq >/dev/null 2>&1 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null 2>&1
    } || die "could not install debootstrap (apt-get install debootstrap)"
    log=$CACHE/debootstrap-$key.log
    say "debootstrap $SUITE with $* from $MIRROR (once; about a minute; log: $log)"
    mkdir -p "$WORK/base"
    if ! debootstrap --variant=minbase --include="$(IFS=,; echo "$*")" \
        "$SUITE" "$WORK/base" "$MIRROR" >"$log" 2>&1; then
      tail -n 20 "$log" >&2
      die "debootstrap failed; see $log"
    fi
    rm -rf "${WORK:?}"/base/var/cache/apt/archives/*.deb "${WORK:?}"/base/var/lib/apt/lists/*
    tar --numeric-owner -C "$WORK/base" -cf "$tarball.partial" .
    mv "$tarball.partial" "$tarball"
    rm -rf --one-file-system "$WORK/base"
  fi
  echo "$tarball"
}

prepare_rootfs() {
  # prepare_rootfs FAMILY BASE_TARBALL ROOTFS: the image's root filesystem.
  local family=$1 rootfs=${3:?}
  mkdir -p "$rootfs"
  tar --numeric-owner -C "$rootfs" -xpf "$2"
  # The unprivileged user actions run as.
  grep -q "^action:" "$rootfs/etc/passwd" ||
    echo "action:x:$ACTION_UID:$ACTION_UID:Homerun action:/tmp:/usr/sbin/nologin" >>"$rootfs/etc/passwd"
  grep -q "^action:" "$rootfs/etc/group" || echo "action:x:$ACTION_UID:" >>"$rootfs/etc/group"
  grep -q "^action:" "$rootfs/etc/shadow" || echo "action:!:19000::::::" >>"$rootfs/etc/shadow"
  # The directory the invoker bind-mounts; the proxy listens on a socket in it.
  mkdir -p "$rootfs/run/homerun" "$rootfs/homerun"
  chown "$ACTION_UID:$ACTION_UID" "$rootfs/run/homerun"
  install -m 0644 -o 0 -g 0 "$(proxy_for "$family")" "$rootfs/homerun/"
  # Trim: package lists and caches, documentation, locales, logs, host details debootstrap copied.
  rm -rf "${rootfs:?}"/var/lib/apt/lists/* "${rootfs:?}"/var/cache/apt/* \
    "${rootfs:?}"/var/cache/debconf/*-old "${rootfs:?}"/usr/share/doc/* "${rootfs:?}"/usr/share/man/* \
    "${rootfs:?}"/usr/share/info/* "${rootfs:?}"/usr/share/locale/* "${rootfs:?}"/usr/share/lintian \
    "${rootfs:?}"/var/log/* "${rootfs:?}"/dev/* "${rootfs:?}"/tmp/* "${rootfs:?}"/root/.cache
  : >"$rootfs/etc/resolv.conf"
  echo localhost >"$rootfs/etc/hostname"
}

build_kind() {
  # build_kind KIND IMAGE
  local kind=$1 image=$2 family=${1%%:*} version=${1#*:} repository=${2%:*}
  local packages proxy hash tag base rootfs installed previous
  packages=$(packages_for "$family") || die "$kind: no recipe for the '$family' family in $0"
  proxy=$(proxy_for "$family")
  [ -f "$proxy" ] || die "$kind: proxy $proxy is missing"
  hash=$(cat "$HERE/build.sh" "$proxy" <(echo "$SUITE $packages") | sha256sum | cut -c1-12)
  tag=$repository:$hash

  if [ -z "$REFRESH" ] && docker image inspect "$tag" >/dev/null 2>&1; then
    docker tag "$tag" "$image"
    say "$kind: $image is up to date ($tag)"
    return 0
  fi
  say "building $kind as $image ($tag)"
  # shellcheck disable=SC2086 # word splitting of the package list is intended
  base=$(base_tarball $packages)
  rootfs=$WORK/rootfs-$family
  prepare_rootfs "$family" "$base" "$rootfs"

  installed=$(runtime_version "$family" "$rootfs") || die "$kind: the runtime does not start in the image"
  case $installed in
    "$version" | "$version".*) ;;
    *) die "$kind: Debian $SUITE provides $family $installed, not $version" ;;
  esac
  check_proxy_syntax "$family" "$rootfs" || die "$kind: $family $installed cannot parse $proxy"

  say "$kind: importing $family $installed ($(du -sh "$rootfs" | cut -f1)) into the engine"
  tar --numeric-owner -C "$rootfs" -c . | docker import \
    --change "USER $ACTION_UID:$ACTION_UID" \
    --change 'WORKDIR /tmp' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV HOMERUN_SOCKET=/run/homerun/action.sock' \
    --change "LABEL org.homerun.kind=$kind org.homerun.build=$hash" \
    --change "CMD $(command_for "$family")" \
    --message "Homerun $kind runtime ($family $installed, Debian $SUITE)" \
    - "$tag" >/dev/null || die "$kind: docker import failed"
  previous=$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
  docker tag "$tag" "$image"
  rm -rf --one-file-system "$rootfs"

  # Older builds of this repository are unused now (images still used by containers stay).
  docker image ls --format '{{.Repository}}:{{.Tag}}' "$repository" |
    grep -v -x -e "$tag" -e "$image" | xargs -r docker rmi >/dev/null 2>&1 || true
  if [ -n "$previous" ] &&
    [ "$(docker image inspect --format '{{len .RepoTags}}' "$previous" 2>/dev/null)" = 0 ]; then
    docker rmi "$previous" >/dev/null 2>&1 || true
  fi
  say "$kind: built $image ($(docker image inspect --format '{{.Size}}' "$tag" |
    awk '{ printf "%.0f MB", $1 / 1e6 }'))"
}

# ---- main -----------------------------------------------------------------------------------

REFRESH=
case ${1:-} in
  -h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  --refresh) REFRESH=1; shift ;;
esac
[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot)"
command -v docker >/dev/null || die "the docker CLI is missing (deploy/lib.sh: ensure_docker)"
docker info >/dev/null 2>&1 ||
  die "the Docker engine is not reachable (start it with: bash -c 'source deploy/lib.sh; ensure_docker')"

# "kind image" per line, from the runtimes manifest.
KINDS=$(python3 -c '
import json, sys
for family in json.load(open(sys.argv[1]))["runtimes"].values():
    for runtime in family:
        print(runtime["kind"], runtime["image"])
' "$MANIFEST") || die "cannot read $MANIFEST"

SELECTED=()
if [ $# -eq 0 ]; then
  while read -r kind image; do SELECTED+=("$kind $image"); done <<<"$KINDS"
else
  for wanted in "$@"; do
    line=$(awk -v k="$wanted" '$1 == k' <<<"$KINDS")
    [ -n "$line" ] || die "unknown kind '$wanted'; $MANIFEST has: $(cut -d' ' -f1 <<<"$KINDS" | xargs)"
    SELECTED+=("$line")
  done
fi

mkdir -p "$CACHE"
exec 9>"$CACHE/build.lock"
flock 9 # one build at a time on this machine
WORK=$(mktemp -d "$CACHE/work.XXXXXX")
for line in "${SELECTED[@]}"; do
  # shellcheck disable=SC2086
  build_kind $line
done
