#!/usr/bin/env bash
# Installs what Tessera needs on Debian 12 (as root) when it is missing, then
# the npm dependencies and the build. Safe to run again: it skips what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-cli >/dev/null || need+=(redis-tools)
command -v etcd >/dev/null || need+=(etcd-server)
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
if [ "${TESSERA_SETUP_TEST_TOOLS:-0}" = 1 ]; then
  command -v sslscan >/dev/null || need+=(sslscan)
  command -v tshark >/dev/null || need+=(tshark)
  command -v cc >/dev/null || need+=(gcc libc6-dev)   # builds the ALPN shim the sslscan test loads
  [ -x /usr/bin/chromium ] || need+=(chromium)          # the web UI tests drive it with playwright-core
  command -v iptables >/dev/null || need+=(iptables)    # the partition tests cut links between test nodes with it
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# The distribution's own services are not ours: keep them from holding the ports we use.
for svc in redis-server etcd; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then systemctl stop "$svc" || true; fi
done

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
npm run --silent build
