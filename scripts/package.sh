#!/usr/bin/env bash
# Builds the Debian package build/tessera_<version>_amd64.deb: the built tree
# and its production dependencies (Node 24 included) under /opt/tessera,
# /usr/bin/tessera, the tessera.service unit and /etc/tessera/tessera.conf.
# Needs the build (scripts/setup.sh) and dpkg-deb; no network.
#   TESSERA_DEB_COMPRESSION=none|gzip|xz|zstd (default zstd)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f dist/src/cli/main.js ] || { echo "package: build first (scripts/setup.sh)" >&2; exit 1; }
version=$(sed -n 's/^  "version": "\(.*\)",$/\1/p' package.json)
out=build/tessera_${version}_amd64.deb
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/root
app=$root/opt/tessera
mkdir -p "$app/scripts" "$root/usr/bin" "$root/lib/systemd/system" "$root/etc/tessera" \
  "$root/usr/share/doc/tessera" "$root/DEBIAN"

mkdir -p "$app/dist" && cp -a dist/src dist/web "$app/dist/"
cp -a bin package.json package-lock.json "$app/"
cp -a scripts/node-path.sh "$app/scripts/"
# Production dependencies only, from the installed tree (no registry needed).
cp -a node_modules "$app/node_modules"
(cd "$app" && npm prune --omit=dev --no-audit --no-fund --loglevel=error >/dev/null)
ln -s /opt/tessera/bin/tessera "$root/usr/bin/tessera"

install -m 0644 packaging/tessera.service "$root/lib/systemd/system/tessera.service"
install -m 0644 packaging/tessera.conf "$root/etc/tessera/tessera.conf"
install -m 0644 README.md "$root/usr/share/doc/tessera/README.md"
[ -d docs ] && cp -a docs "$root/usr/share/doc/tessera/docs"
sed "s/@VERSION@/$version/" packaging/debian/control.in > "$root/DEBIAN/control"
echo "Installed-Size: $(du -sk "$root" --exclude=DEBIAN | cut -f1)" >> "$root/DEBIAN/control"
install -m 0644 packaging/debian/conffiles "$root/DEBIAN/conffiles"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$root/DEBIAN/"

mkdir -p build
dpkg-deb --root-owner-group -Z"${TESSERA_DEB_COMPRESSION:-zstd}" --build "$root" "$out" >/dev/null
echo "$out"
