#!/usr/bin/env bash
# Builds a Debian package with dpkg-deb, without a debian/ source tree: usage make-deb.sh OUTPUT.deb VERSION.
# Expects `swift build -c release --static-swift-stdlib` to have run (the Makefile's `deb` target does both).
set -euo pipefail
cd "$(dirname "$0")/.."
output=$1
version=$2
arch=$(dpkg --print-architecture)
work=$(dirname "$output")
stage="$work/root"
rm -rf "$stage" "$output"
mkdir -p "$stage/DEBIAN"
binary="$(swift build -c release --static-swift-stdlib --show-bin-path)/devstatusd"

make --no-print-directory install-files DESTDIR="$stage" PREFIX=/usr BINARY="$binary" \
  SYSTEMD_UNIT_DIR=/lib/systemd/system ZSH_COMPLETION_DIR=/usr/share/zsh/vendor-completions >/dev/null
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$stage/usr/bin/devstatusd"
gzip -9n "$stage/usr/share/man/man8/devstatusd.8"
docs="$stage/usr/share/doc/devstatusd"
install -d -m 0755 "$docs"
install -m 0644 packaging/debian/copyright "$docs/copyright"
# A native package's changelog: one entry for this version.
{
  echo "devstatusd ($version) unstable; urgency=medium"
  echo
  echo "  * Release $version, built from git revision $(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)."
  echo
  echo " -- devstatusd developers <devstatusd@example.org>  $(date -R -u -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}")"
} | gzip -9n > "$docs/changelog.gz"
chmod 0644 "$docs/changelog.gz"

# Shared-library dependencies as dpkg-shlibdeps computes them (it wants a debian/control beside it).
shlibs="$work/shlibs"
mkdir -p "$shlibs/debian"
printf 'Source: devstatusd\n\nPackage: devstatusd\nArchitecture: any\n' > "$shlibs/debian/control"
depends=$(cd "$shlibs" && dpkg-shlibdeps -O "$OLDPWD/$stage/usr/bin/devstatusd" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[[ -n "$depends" ]] || { echo "make-deb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" -e "s/@DEPENDS@/$depends/" \
  packaging/debian/control.in > "$stage/DEBIAN/control"
echo /etc/devstatusd/config.toml > "$stage/DEBIAN/conffiles"
for script in postinst prerm postrm; do install -m 0755 "packaging/debian/$script" "$stage/DEBIAN/$script"; done
( cd "$stage" && find . -type f ! -path './DEBIAN/*' ! -path './etc/*' -printf '%P\0' | sort -z | xargs -0 md5sum ) \
  > "$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/control" "$stage/DEBIAN/conffiles" "$stage/DEBIAN/md5sums"

dpkg-deb --root-owner-group -Zxz --build "$stage" "$output" >/dev/null
echo "built $output (Depends: $depends)"
echo "lintian:"
lintian --fail-on error --info "$output"
