#!/usr/bin/env bash
# Puts `redisfs` and `redisfs-snapshot` on the PATH as symlinks to this checkout's built CLIs
# (apps/mount/dist/cli.js, apps/snapshot/dist/cli.js: node runs them through their
# `#!/usr/bin/env node` line, no pnpm in between). Safe to run again: a link that already points
# here is left as it is, a link into another redisfs checkout is moved here, anything else
# (a file, a foreign link) is never overwritten: that is an error, reported, exit 1.
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

# install_command NAME RELATIVE-TARGET: links $bin_dir/NAME to $root/RELATIVE-TARGET.
install_command() {
  local name="$1" rel="$2"
  local target="$root/$rel" link="$bin_dir/$1"
  if [[ ! -f $target ]] || [[ "$(head -n 1 "$target")" != '#!/usr/bin/env node' ]]; then
    warn "$target is not built (or lacks its #!/usr/bin/env node line): run bash scripts/bootstrap.sh"
    failed=1
    return
  fi
  [[ -x $target ]] || chmod a+x "$target"

  if [[ -L $link ]]; then
    local current
    current="$(readlink "$link")"
    if [[ $current == "$target" ]]; then
      say "$name: $link -> $target (already installed)"
      return
    fi
    # A link into a redisfs checkout (this one moved, or another one) is ours to move.
    if [[ $current != */"$rel" ]]; then
      warn "$link is a link to $current, not to a redisfs checkout: left alone (remove it, or set REDISFS_BIN_DIR=<dir> to install elsewhere)"
      failed=1
      return
    fi
    say "$name: $link pointed at $current: now -> $target"
  elif [[ -e $link ]]; then
    warn "$link exists and is not a redisfs link: left alone (remove it, or set REDISFS_BIN_DIR=<dir> to install elsewhere)"
    failed=1
    return
  else
    say "$name: $link -> $target (installed)"
  fi
  # Made beside the link, then renamed over it: the command is never missing in between.
  local tmp="$bin_dir/.$name.tmp.$$"
  ln -s "$target" "$tmp"
  mv -T -f "$tmp" "$link"
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
