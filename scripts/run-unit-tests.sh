#!/usr/bin/env bash
# The unit suite (npm test, npm run test:unit): the files three at a time
# (each has its own loopback addresses and ports, and they mostly wait on etcd
# and sockets, not on the CPU), then join-controller alone: it runs an etcd of
# two voting members, whose quorum a busy machine can stall past the test's
# timeout. Exits non-zero if either part fails.
set -u
cd "$(dirname "$0")/.."
# The Node the project runs on (the pinned 24 where PATH has an older one), also when run outside npm.
node=$(scripts/node-path.sh) || exit 1
mapfile -t files < <(ls dist/test/unit/*.test.js | grep -v '/join-controller\.test\.js$')
"$node" --test --test-concurrency=3 --test-force-exit --test-timeout=120000 "${files[@]}"
together=$?
"$node" --test --test-force-exit --test-timeout=120000 dist/test/unit/join-controller.test.js
alone=$?
[ "$together" -eq 0 ] && [ "$alone" -eq 0 ]
