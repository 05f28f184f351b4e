#!/usr/bin/env bash
# Makes a fresh Debian/Ubuntu machine ready to build and test redisfs, installing only what is
# missing (safe to run again): Node check, apt packages (redis-server, FUSE 2 and the toolchain
# that builds fuse-native from source), /dev/fuse, pnpm at the pinned version, dependencies, build,
# and the `redisfs` and `redisfs-snapshot` commands on the PATH (scripts/install-commands.sh).
# `pnpm install` and `pnpm build` are skipped when their inputs did not change since they last
# worked (stamps in node_modules/), so a re-run with nothing to do takes a few seconds.
#
#   bash scripts/bootstrap.sh [--force]     # --force: install and build even when up to date
#
# Environment: CI=true turns warnings about FUSE into errors; REDISFS_BIN_DIR=<dir> installs the
# commands there (default: /usr/local/bin as root, ~/.local/bin otherwise).
set -euo pipefail

force=false
for arg in "$@"; do
  case $arg in
    --force) force=true ;;
    *) printf '[bootstrap] error: unknown argument %s (the only one is --force)\n' "$arg" >&2; exit 2 ;;
  esac
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."

REQUIRED_NODE="20.19.0"
# A corepack pnpm shim must never stop to ask before downloading (CI has no stdin).
export COREPACK_ENABLE_DOWNLOAD_PROMPT=0

say() { printf '[bootstrap] %s\n' "$*"; }
die() { printf '[bootstrap] error: %s\n' "$*" >&2; exit 1; }
is_ci() { [[ -n "${CI:-}" && "${CI}" != "0" && "${CI,,}" != "false" ]]; }

# Runs a command as root: directly when we are root, through sudo otherwise.
as_root() {
  if [[ $EUID -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root for: $* (run as root or install sudo)"
  fi
}

# --- Node -----------------------------------------------------------------------------------
command -v node >/dev/null 2>&1 || die "node is not installed: install Node.js >= $REQUIRED_NODE (https://nodejs.org)"
node_version="$(node -p 'process.versions.node')"
if ! node -e '
  const [a, b] = [process.argv[1], process.argv[2]].map((v) => v.split(".").map(Number));
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) process.exit(a[i] > b[i] ? 0 : 1);
' "$node_version" "$REQUIRED_NODE"; then
  die "Node.js $node_version is too old: redisfs needs >= $REQUIRED_NODE"
fi
command -v npm >/dev/null 2>&1 || die "npm is not installed (it ships with Node.js)"
say "node $node_version ok"

# --- apt packages ---------------------------------------------------------------------------
# Each need is checked by what it provides, so a machine set up another way is left alone.
missing=()
has() { command -v "$1" >/dev/null 2>&1; }
has_lib() { { ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null || true; } | grep -q "$1"; }
apt_has() { apt-cache show "$1" >/dev/null 2>&1; }

has redis-server || missing+=(redis-server)
# fuse (2) provides fusermount. Where fuse3 is installed, its fusermount3 serves (installing
# fuse would remove fuse3, which conflicts with it on newer Ubuntu).
has fusermount || has fusermount3 || missing+=(fuse)
has_lib 'libfuse\.so\.2' || missing+=(LIBFUSE2)
has pkg-config || missing+=(pkg-config)
{ has pkg-config && pkg-config --exists fuse; } || missing+=(libfuse-dev)
has python3 || missing+=(python3)
has make || missing+=(make)
has g++ || missing+=(g++)

installed_redis=false
if ((${#missing[@]} > 0)); then
  command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and apt-get is not available: install them by hand"
  say "apt-get update"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  packages=()
  for p in "${missing[@]}"; do
    if [[ $p == LIBFUSE2 ]]; then
      # Ubuntu 24.04 renamed libfuse2 to libfuse2t64.
      if apt_has libfuse2t64; then packages+=(libfuse2t64); else packages+=(libfuse2); fi
    else
      packages+=("$p")
    fi
  done
  [[ " ${packages[*]} " == *" redis-server "* ]] && installed_redis=true
  say "apt-get install ${packages[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
else
  say "system packages ok (redis-server, fusermount, libfuse2, libfuse-dev, pkg-config, python3, make, g++)"
fi

# The tests start their own redis-server on a free port; the distribution's service, which the
# package's postinst may have started (unless policy-rc.d denied it), is not wanted.
if $installed_redis; then
  if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
    as_root systemctl disable --now redis-server >/dev/null 2>&1 || true
  else
    as_root service redis-server stop >/dev/null 2>&1 || as_root /etc/init.d/redis-server stop >/dev/null 2>&1 || true
    if command -v update-rc.d >/dev/null 2>&1; then as_root update-rc.d redis-server disable >/dev/null 2>&1 || true; fi
  fi
  say "redis-server installed; its system service is stopped and disabled"
fi

# --- /dev/fuse ------------------------------------------------------------------------------
if [[ ! -e /dev/fuse ]]; then
  say "/dev/fuse is missing: modprobe fuse"
  as_root modprobe fuse >/dev/null 2>&1 || true
fi
if [[ ! -e /dev/fuse ]]; then
  msg="/dev/fuse does not exist and 'modprobe fuse' did not create it: load the fuse kernel module, or in a container run with --device /dev/fuse --cap-add SYS_ADMIN"
  if is_ci; then die "$msg"; fi
  say "warning: $msg (the e2e tests will be skipped)"
else
  say "/dev/fuse ok"
fi

# --- pnpm -----------------------------------------------------------------------------------
pnpm_want="$(node -p 'const pm = require("./package.json").packageManager || ""; pm.startsWith("pnpm@") ? pm.slice(5).split("+")[0] : ""')"
[[ -n $pnpm_want ]] || die "package.json has no packageManager pnpm@X"
pnpm_have="$(pnpm --version 2>/dev/null || true)"
if [[ $pnpm_have != "$pnpm_want" ]]; then
  say "installing pnpm@$pnpm_want (found: ${pnpm_have:-none})"
  npm_prefix="$(npm prefix -g 2>/dev/null)"
  # --force: replace a pnpm shim another installer (e.g. corepack) left in the same bin dir.
  if [[ -w "$npm_prefix" ]]; then
    npm install -g --force --no-fund --no-audit --loglevel=error "pnpm@$pnpm_want" >/dev/null
  else
    as_root npm install -g --force --no-fund --no-audit --loglevel=error "pnpm@$pnpm_want" >/dev/null
  fi
  hash -r
  if [[ "$(pnpm --version 2>/dev/null || true)" != "$pnpm_want" ]]; then
    export PATH="$npm_prefix/bin:$PATH"
    [[ "$(pnpm --version 2>/dev/null || true)" == "$pnpm_want" ]] ||
      die "installed pnpm@$pnpm_want but \`pnpm --version\` says $(pnpm --version 2>/dev/null || echo nothing)"
    say "note: another pnpm comes first on PATH; put $npm_prefix/bin first"
  fi
fi
say "pnpm $pnpm_want ok"

# --- dependencies and build -----------------------------------------------------------------
# Quiet when it works; the whole log when it does not (a fuse-native compile error is long).
quietly() {
  local log
  log="$(mktemp)"
  if "$@" >"$log" 2>&1; then
    rm -f "$log"
  else
    local code=$?
    cat "$log" >&2
    rm -f "$log"
    die "failed (exit $code): $*"
  fi
}

# Each step is skipped when its inputs hash the same as at its last success (a stamp in
# node_modules/, written only after the step worked): a re-run with nothing changed takes seconds.
INSTALL_STAMP=node_modules/.redisfs-install-stamp
BUILD_STAMP=node_modules/.redisfs-build-stamp

# What `pnpm install` depends on: the lockfile, every package.json, the workspace file, the
# patches, the sources of the FUSE binding (packages/fuse-native, compiled by its install script),
# and the node and pnpm that install (the addon is compiled for this node).
install_inputs_hash() {
  local files=(package.json pnpm-workspace.yaml)
  [[ -f pnpm-lock.yaml ]] && files+=(pnpm-lock.yaml)
  [[ -f .npmrc ]] && files+=(.npmrc)
  mapfile -t -O "${#files[@]}" files < <(
    find . -mindepth 2 \( -name node_modules -o -name dist -o -name .git \) -prune -o -type f -name package.json -print
    find patches -type f 2>/dev/null
    find packages/fuse-native -maxdepth 1 -type f \( -name '*.c' -o -name '*.h' -o -name binding.gyp -o -name index.js \) 2>/dev/null
  )
  { printf 'node %s pnpm %s\n' "$node_version" "$pnpm_want"; printf '%s\n' "${files[@]}" | LC_ALL=C sort | xargs -d '\n' sha256sum --; } |
    sha256sum | cut -d' ' -f1
}

# What `pnpm build` depends on: every package's and app's sources (tests aside), configs and
# package.json, the shared configs, and the installed dependencies (the install stamp).
build_inputs_hash() {
  {
    cat "$INSTALL_STAMP" 2>/dev/null || true
    { ls package.json tsconfig*.json tsup.config.base.ts 2>/dev/null
      find packages apps \( -name node_modules -o -name dist -o -name fixtures \) -prune -o -type f \
        ! -name '*.test.ts' ! -name '*.md' -print; } | LC_ALL=C sort | xargs -d '\n' sha256sum --
  } | sha256sum | cut -d' ' -f1
}

# Whether every package's and app's build output exists (a deleted dist/ is rebuilt).
built_outputs_exist() {
  local dir
  for dir in packages/*/ apps/*/; do
    grep -q '"build"' "$dir/package.json" 2>/dev/null || continue
    compgen -G "$dir/dist/*.js" >/dev/null || return 1
  done
}

stamp_says() { [[ -f $1 && "$(cat "$1")" == "$2" ]]; }
write_stamp() { printf '%s\n' "$2" >"$1.tmp" && mv -f "$1.tmp" "$1"; }

install_hash="$(install_inputs_hash)"
if ! $force && [[ -d node_modules ]] && stamp_says "$INSTALL_STAMP" "$install_hash"; then
  say "dependencies unchanged since the last install: pnpm install skipped"
else
  rm -f "$INSTALL_STAMP" "$BUILD_STAMP"
  if [[ -f pnpm-lock.yaml ]]; then
    say "pnpm install --frozen-lockfile"
    quietly pnpm install --frozen-lockfile
  else
    say "pnpm install (no lockfile)"
    quietly pnpm install
  fi
  write_stamp "$INSTALL_STAMP" "$install_hash"
fi

build_hash="$(build_inputs_hash)"
if ! $force && stamp_says "$BUILD_STAMP" "$build_hash" && built_outputs_exist; then
  say "sources unchanged since the last build: pnpm build skipped"
else
  rm -f "$BUILD_STAMP"
  say "pnpm build"
  quietly pnpm build
  write_stamp "$BUILD_STAMP" "$build_hash"
fi

# --- commands -------------------------------------------------------------------------------
# A foreign `redisfs` in the way is reported but does not fail the set-up: the build is ready
# and scripts/redisfs.sh runs it without the installed commands.
if ! bash scripts/install-commands.sh; then
  say "warning: redisfs and redisfs-snapshot are not both installed on PATH (see above); bash scripts/redisfs.sh runs redisfs without them"
fi
say "ready"
