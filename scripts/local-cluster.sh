#!/usr/bin/env bash
# The main job: a local 3-node Tessera cluster on 127.0.0.1-3.
#   scripts/local-cluster.sh          start (create the cluster the first time)
#   scripts/local-cluster.sh stop     stop the three nodes
#   scripts/local-cluster.sh status   show the cluster
# Nodes run in the background; data, logs and credentials are in $TESSERA_HOME
# (default: .tessera-local in the repository).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
home=${TESSERA_HOME:-$repo/.tessera-local}
user=admin@tessera.local
cmd=${1:-start}

node_pid() { local f="$home/n$1/tessera.pid" p; p=$(cat "$f" 2>/dev/null) && kill -0 "$p" 2>/dev/null && echo "$p"; }

stop_nodes() {
  for i in 3 2 1; do
    if pid=$(node_pid $i); then kill -TERM "$pid"; fi
  done
  for i in 1 2 3; do
    for _ in $(seq 1 100); do node_pid $i >/dev/null || break; sleep 0.1; done
  done
}

wait_rest() { # addr
  for _ in $(seq 1 150); do
    ./bin/tessera --node "$1" info cluster >/dev/null 2>&1 && return 0
    curl -sk "https://$1:9443/v1/bootstrap" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "node $1 did not come up; see $home/n${1##*.}.log" >&2
  return 1
}

case "$cmd" in
  stop) stop_nodes; echo "stopped"; exit 0 ;;
  status)
    export TESSERA_USERNAME=$user TESSERA_PASSWORD=$(cat "$home/credentials")
    exec ./bin/tessera status ;;
  start) ;;
  *) echo "usage: $0 [start|stop|status]" >&2; exit 2 ;;
esac

./scripts/setup.sh
mkdir -p "$home"; chmod 700 "$home"
if [ ! -f "$home/credentials" ]; then
  head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$home/credentials"
  chmod 600 "$home/credentials"
fi
password=$(cat "$home/credentials")
export TESSERA_USERNAME=$user TESSERA_PASSWORD=$password

for i in 1 2 3; do
  if node_pid $i >/dev/null; then continue; fi
  nohup ./bin/tessera node start --addr 127.0.0.$i --data-dir "$home/n$i" >>"$home/n$i.log" 2>&1 &
done
for i in 1 2 3; do wait_rest 127.0.0.$i; done

if [ ! -f "$home/n1/node.json" ]; then
  ./bin/tessera --node 127.0.0.1 cluster create name tessera.local username "$user" password "$password"
fi
# Joins are pinned to the CA that signs the REST certificate, the services CA
# (the fingerprint `cluster create` printed); the internode CA stays internal.
fp=$(openssl x509 -in "$home/n1/certs/services-ca.pem" -noout -fingerprint -sha256 | cut -d= -f2)
for i in 2 3; do
  if [ ! -f "$home/n$i/node.json" ]; then
    ./bin/tessera --node 127.0.0.$i cluster join nodes 127.0.0.1 username "$user" password "$password" ca_fingerprint "sha256:$fp"
  fi
done
sleep 2
# The sample database: 2 shards, replicated, data-plane encryption on, an endpoint on every node.
if ! ./bin/tessera info db sample >/dev/null 2>&1; then
  ca="$home/n1/certs/services-ca.pem"
  body='{"name":"sample","memory_size":268435456,"port":12000,"shards_count":2,"sharding":true,"replication":true,"proxy_policy":"all-nodes","data_internode_encryption":true,"data_persistence":"aof"}'
  curl -sS --fail-with-body --cacert "$ca" -u "$user:$password" -H 'content-type: application/json' -d "$body" https://127.0.0.1:9443/v1/bdbs >/dev/null
fi
for _ in $(seq 1 300); do
  ./bin/tessera info db sample 2>/dev/null | grep -q '^status: active$' && break
  sleep 0.2
done
./bin/tessera status
cat <<EOT

Tessera local cluster is running (3 nodes, 127.0.0.1-3).
  Database:     sample (2 shards, replicated, data_internode_encryption enabled, data_persistence aof)
  Endpoints:    127.0.0.1:12000  127.0.0.2:12000  127.0.0.3:12000
  Try:          redis-cli -h 127.0.0.1 -p 12000 SET hello world && redis-cli -h 127.0.0.3 -p 12000 GET hello
  REST API:     https://127.0.0.1:9443/v1  (also on 127.0.0.2 and 127.0.0.3)
  Credentials:  $user / $password
  Services CA:  $home/n1/certs/services-ca.pem  (signs REST, web UI, metrics and TLS endpoints; the internode CA stays internal)
  Web UI:       https://127.0.0.1:8443  (also on 127.0.0.2 and 127.0.0.3; sign in with the credentials above;
                its certificate is issued by the services CA above: trust it, or accept the browser's warning)
  REST:         curl --cacert $home/n1/certs/services-ca.pem -u '$user:$password' https://127.0.0.1:9443/v1/nodes
  CLI:          TESSERA_USERNAME=$user TESSERA_PASSWORD=$password ./bin/tessera status
  Logs:         $home/n1.log, n2.log, n3.log
  Stop:         scripts/local-cluster.sh stop
EOT
