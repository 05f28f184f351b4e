#!/usr/bin/env bash
# Puts `redisfs` and `redisfs-snapshot` on the PATH: two-line shell wrappers that exec this
# checkout's built CLIs (apps/mount/dist/cli.js, apps/snapshot/dist/cli.js) with the absolute
# path of the node that set-up found, no pnpm in between. The absolute node path matters: mount(8)
# runs a filesystem's helper with no PATH at all (fstab, `mount -t fuse.redisfs`), where a
# `#!/usr/bin/env node` line finds node only in /bin or /usr/bin.
#
# Safe to run again: a wrapper that already says the same is left as it is; one of ours that
# says something else (the checkout or node moved), or a symlink into a redisfs checkout (how
# earlier versions installed), is replaced; anything else (a file, a foreign link) is never
# overwritten: that is an error, reported, exit 1.
#
#   bash scripts/install-commands.sh        # run by scripts/bootstrap.sh
#
# Where: $REDISFS_BIN_DIR if set; /usr/local/bin as root; ~/.local/bin otherwise.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"

say() { printf '[install-commands] %s\n' "$*"; }
warn() { printf '[install-commands] error: %s\n' "$*" >&2; }

if [[ -n ${REDISFS_BIN_DIR:-} ]]; then
  bin_dir="$REDISFS_BIN_DIR"
elif [[ $EUID -eq 0 ]]; then
  bin_dir=/usr/local/bin
else
  bin_dir="$HOME/.local/bin"
fi
mkdir -p "$bin_dir"
bin_dir="$(cd "$bin_dir" && pwd)"
[[ -w $bin_dir ]] || { warn "$bin_dir is not writable: run as root, or set REDISFS_BIN_DIR=<dir>"; exit 1; }

failed=0

node_bin="$(command -v node || true)"
[[ $node_bin == /* ]] || { warn "node is not on PATH as an absolute path (found: '${node_bin}')"; exit 1; }
node_bin="$(cd "$(dirname "$node_bin")" && pwd -P)/$(basename "$node_bin")"

# The marker that tells our wrappers from anything else at a command path.
MARKER='# redisfs command, installed by'

# Single-quoted for sh, whatever the path holds.
sh_quote() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }

# install_command NAME RELATIVE-TARGET: writes the wrapper $bin_dir/NAME for $root/RELATIVE-TARGET.
install_command() {
  local name="$1" rel="$2"
  local target="$root/$rel" path="$bin_dir/$1"
  if [[ ! -f $target ]]; then
    warn "$target is not built: run bash scripts/bootstrap.sh"
    failed=1
    return
  fi
  local wanted
  wanted="$(printf '#!/bin/sh\n%s %s (run it again after moving the checkout or node)\nexec %s %s "$@"\n' \
    "$MARKER" "$root/scripts/install-commands.sh" "$(sh_quote "$node_bin")" "$(sh_quote "$target")")"

  if [[ -L $path ]]; then
    local current
    current="$(readlink "$path")"
    # A symlink into a redisfs checkout is how earlier versions installed: ours to replace.
    if [[ $current != */"$rel" ]]; then
      warn "$path is a link to $current, not to a redisfs checkout: left alone (remove it, or set REDISFS_BIN_DIR=<dir> to install elsewhere)"
      failed=1
      return
    fi
    say "$name: $path was a link to $current: now runs $target"
  elif [[ -f $path ]]; then
    if [[ "$(sed -n 2p "$path")" != "$MARKER"* ]]; then
      warn "$path exists and is not a redisfs command: left alone (remove it, or set REDISFS_BIN_DIR=<dir> to install elsewhere)"
      failed=1
      return
    fi
    if [[ "$(cat "$path")" == "$wanted" ]]; then
      say "$name: $path runs $target (already installed)"
      return
    fi
    say "$name: $path now runs $target with $node_bin (updated)"
  elif [[ -e $path ]]; then
    warn "$path exists and is not a redisfs command: left alone (remove it, or set REDISFS_BIN_DIR=<dir> to install elsewhere)"
    failed=1
    return
  else
    say "$name: $path runs $target (installed)"
  fi
  # Written beside it, then renamed over it: the command is never missing or half-written.
  local tmp="$bin_dir/.$name.tmp.$$"
  printf '%s\n' "$wanted" >"$tmp"
  chmod 755 "$tmp"
  mv -T -f "$tmp" "$path"
}

install_command redisfs apps/mount/dist/cli.js
install_command redisfs-snapshot apps/snapshot/dist/cli.js

# Does the shell find what we installed?
case ":$PATH:" in
  *":$bin_dir:"*)
    for name in redisfs redisfs-snapshot; do
      found="$(command -v "$name" 2>/dev/null || true)"
      if [[ -n $found && $found != "$bin_dir/$name" ]]; then
        say "note: \`$name\` runs $found, which comes before $bin_dir on PATH"
      fi
    done
    ;;
  *)
    if [[ $bin_dir == "$HOME/.local/bin" ]]; then shown="\$HOME/.local/bin"; else shown="$bin_dir"; fi
    say "note: $bin_dir is not on PATH: add this line to ~/.bashrc (or ~/.profile), then open a new shell:"
    say "  export PATH=\"$shown:\$PATH\""
    ;;
esac

exit "$failed"
