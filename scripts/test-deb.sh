#!/usr/bin/env bash
# Installs the package built by `make deb` into a scratch root with dpkg (its own admin directory, so the
# machine's dpkg database is not touched) and checks what a user gets: the installed binary runs `--version`,
# the config is a registered conffile, unit, man page and completions are in place. Removing it leaves the
# conffile until a purge. Usage: test-deb.sh PACKAGE.deb
set -euo pipefail
package=$1
root=$(mktemp -d /tmp/devstatusd-deb-root.XXXXXX)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates"
touch "$root/var/lib/dpkg/status"
failures=0
check() { # check DESCRIPTION COMMAND...
  local what=$1
  shift
  if "$@" >/dev/null 2>&1; then echo "ok: $what"; else echo "FAILED: $what" >&2; failures=$((failures + 1)); fi
}
# --force-depends: the scratch root's database knows none of the libraries (the host has them);
# --force-script-chrootless: the maintainer scripts run here with DPKG_ROOT set (they do nothing then).
if ! installed=$(dpkg --root="$root" --force-depends --force-script-chrootless -i "$package" 2>&1) ||
  [[ ! -x "$root/usr/bin/devstatusd" ]]; then
  echo "dpkg -i into $root failed:" >&2
  echo "$installed" >&2
  exit 1
fi
echo "installed $package into a scratch root (dependencies are the host's)"

version=$("$root/usr/bin/devstatusd" --version)
echo "installed binary: $version"
check "--version names version, revision and build date" \
  grep -Eq '^devstatusd [0-9]+\.[0-9]+\.[0-9]+ \(revision [0-9a-f]{7,}(-dirty)?, built [0-9]{4}-[0-9]{2}-[0-9]{2}T' <<<"$version"
check "the package is installed" bash -c "dpkg --root='$root' -s devstatusd | grep -q '^Status: install ok installed'"
check "/etc/devstatusd/config.toml is a conffile" \
  bash -c "dpkg --root='$root' -s devstatusd | grep -q '^ /etc/devstatusd/config.toml [0-9a-f]\{32\}'"
check "the installed config is valid" bash -c "cd '$root' && usr/bin/devstatusd check-config -c etc/devstatusd/config.toml"
check "systemd unit points at /usr/bin" grep -q '^ExecStart=/usr/bin/devstatusd ' "$root/lib/systemd/system/devstatusd.service"
check "man page" test -s "$root/usr/share/man/man8/devstatusd.8.gz"
check "bash completion" grep -q devstatusd "$root/usr/share/bash-completion/completions/devstatusd"
check "zsh completion" grep -q '#compdef devstatusd' "$root/usr/share/zsh/vendor-completions/_devstatusd"
check "fish completion" grep -q "complete -c 'devstatusd'" "$root/usr/share/fish/vendor_completions.d/devstatusd.fish"

dpkg --root="$root" --force-script-chrootless -r devstatusd >/dev/null 2>&1
check "removed: the binary is gone" test ! -e "$root/usr/bin/devstatusd"
check "removed: the conffile stays until a purge" test -e "$root/etc/devstatusd/config.toml"
dpkg --root="$root" --force-script-chrootless -P devstatusd >/dev/null 2>&1
check "purged: the conffile is gone" test ! -e "$root/etc/devstatusd/config.toml"

if ((failures > 0)); then
  echo "package test: $failures failed" >&2
  exit 1
fi
echo "package test: all checks passed"
