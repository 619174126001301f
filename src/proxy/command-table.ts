// The command table of redis-server 7.0.15, as its `COMMAND` lists it (see
// commands.ts, which parses it once at start): data, kept apart from the code.

// name arity first last step flags [tips]  — from redis-server 7.0.15 `COMMAND`.
// "post" and "host:" are not listed by COMMAND but are in redis's table.
export const COMMAND_TABLE = `
acl -2 0 0 0 -
acl|cat -2 0 0 0 noscript,loading,stale
acl|deluser -3 0 0 0 admin,noscript,loading,stale
acl|dryrun -4 0 0 0 admin,noscript,loading,stale
acl|genpass -2 0 0 0 noscript,loading,stale
acl|getuser 3 0 0 0 admin,noscript,loading,stale
acl|help 2 0 0 0 loading,stale
acl|list 2 0 0 0 admin,noscript,loading,stale
acl|load 2 0 0 0 admin,noscript,loading,stale
acl|log -2 0 0 0 admin,noscript,loading,stale
acl|save 2 0 0 0 admin,noscript,loading,stale
acl|setuser -3 0 0 0 admin,noscript,loading,stale
acl|users 2 0 0 0 admin,noscript,loading,stale
acl|whoami 2 0 0 0 noscript,loading,stale
append 3 1 1 1 write,denyoom,fast
asking 1 0 0 0 fast
auth -2 0 0 0 noscript,loading,stale,fast,no_auth,allow_busy
bgrewriteaof 1 0 0 0 admin,noscript,no_async_loading
bgsave -1 0 0 0 admin,noscript,no_async_loading
bitcount -2 1 1 1 readonly
bitfield -2 1 1 1 write,denyoom
bitfield_ro -2 1 1 1 readonly,fast
bitop -4 2 -1 1 write,denyoom
bitpos -3 1 1 1 readonly
blmove 6 1 2 1 write,denyoom,noscript,blocking
blmpop -5 0 0 0 write,blocking,movablekeys
blpop -3 1 -2 1 write,noscript,blocking
brpop -3 1 -2 1 write,noscript,blocking
brpoplpush 4 1 2 1 write,denyoom,noscript,blocking
bzmpop -5 0 0 0 write,blocking,movablekeys
bzpopmax -3 1 -2 1 write,noscript,blocking,fast
bzpopmin -3 1 -2 1 write,noscript,blocking,fast
client -2 0 0 0 -
client|caching 3 0 0 0 noscript,loading,stale
client|getname 2 0 0 0 noscript,loading,stale
client|getredir 2 0 0 0 noscript,loading,stale
client|help 2 0 0 0 loading,stale
client|id 2 0 0 0 noscript,loading,stale
client|info 2 0 0 0 noscript,loading,stale nondeterministic_output
client|kill -3 0 0 0 admin,noscript,loading,stale
client|list -2 0 0 0 admin,noscript,loading,stale nondeterministic_output
client|no-evict 3 0 0 0 admin,noscript,loading,stale
client|pause -3 0 0 0 admin,noscript,loading,stale
client|reply 3 0 0 0 noscript,loading,stale
client|setname 3 0 0 0 noscript,loading,stale
client|tracking -3 0 0 0 noscript,loading,stale
client|trackinginfo 2 0 0 0 noscript,loading,stale
client|unblock -3 0 0 0 admin,noscript,loading,stale
client|unpause 2 0 0 0 admin,noscript,loading,stale
cluster -2 0 0 0 -
cluster|addslots -3 0 0 0 admin,stale,no_async_loading
cluster|addslotsrange -4 0 0 0 admin,stale,no_async_loading
cluster|bumpepoch 2 0 0 0 admin,stale,no_async_loading nondeterministic_output
cluster|count-failure-reports 3 0 0 0 admin,stale nondeterministic_output
cluster|countkeysinslot 3 0 0 0 stale
cluster|delslots -3 0 0 0 admin,stale,no_async_loading
cluster|delslotsrange -4 0 0 0 admin,stale,no_async_loading
cluster|failover -2 0 0 0 admin,stale,no_async_loading
cluster|flushslots 2 0 0 0 admin,stale,no_async_loading
cluster|forget 3 0 0 0 admin,stale,no_async_loading
cluster|getkeysinslot 4 0 0 0 stale nondeterministic_output
cluster|help 2 0 0 0 loading,stale
cluster|info 2 0 0 0 stale nondeterministic_output
cluster|keyslot 3 0 0 0 stale
cluster|links 2 0 0 0 stale nondeterministic_output
cluster|meet -4 0 0 0 admin,stale,no_async_loading
cluster|myid 2 0 0 0 stale
cluster|nodes 2 0 0 0 stale nondeterministic_output
cluster|replicas 3 0 0 0 admin,stale nondeterministic_output
cluster|replicate 3 0 0 0 admin,stale,no_async_loading
cluster|reset -2 0 0 0 admin,noscript,stale
cluster|saveconfig 2 0 0 0 admin,stale,no_async_loading
cluster|set-config-epoch 3 0 0 0 admin,stale,no_async_loading
cluster|setslot -4 0 0 0 admin,stale,no_async_loading
cluster|shards 2 0 0 0 stale nondeterministic_output
cluster|slaves 3 0 0 0 admin,stale nondeterministic_output
cluster|slots 2 0 0 0 stale nondeterministic_output
command -1 0 0 0 loading,stale nondeterministic_output_order
command|count 2 0 0 0 loading,stale
command|docs -2 0 0 0 loading,stale nondeterministic_output_order
command|getkeys -4 0 0 0 loading,stale
command|getkeysandflags -4 0 0 0 loading,stale
command|help 2 0 0 0 loading,stale
command|info -2 0 0 0 loading,stale nondeterministic_output_order
command|list -2 0 0 0 loading,stale nondeterministic_output_order
config -2 0 0 0 -
config|get -3 0 0 0 admin,noscript,loading,stale
config|help 2 0 0 0 loading,stale
config|resetstat 2 0 0 0 admin,noscript,loading,stale
config|rewrite 2 0 0 0 admin,noscript,loading,stale
config|set -4 0 0 0 admin,noscript,loading,stale request_policy:all_nodes,response_policy:all_succeeded
copy -3 1 2 1 write,denyoom
dbsize 1 0 0 0 readonly,fast request_policy:all_shards,response_policy:agg_sum
debug -2 0 0 0 admin,noscript,loading,stale
decr 2 1 1 1 write,denyoom,fast
decrby 3 1 1 1 write,denyoom,fast
del -2 1 -1 1 write request_policy:multi_shard,response_policy:agg_sum
discard 1 0 0 0 noscript,loading,stale,fast,allow_busy
dump 2 1 1 1 readonly nondeterministic_output
echo 2 0 0 0 loading,stale,fast
eval -3 0 0 0 noscript,stale,skip_monitor,no_mandatory_keys,movablekeys
eval_ro -3 0 0 0 readonly,noscript,stale,skip_monitor,no_mandatory_keys,movablekeys
evalsha -3 0 0 0 noscript,stale,skip_monitor,no_mandatory_keys,movablekeys
evalsha_ro -3 0 0 0 readonly,noscript,stale,skip_monitor,no_mandatory_keys,movablekeys
exec 1 0 0 0 noscript,loading,stale,skip_slowlog
exists -2 1 -1 1 readonly,fast request_policy:multi_shard,response_policy:agg_sum
expire -3 1 1 1 write,fast
expireat -3 1 1 1 write,fast
expiretime 2 1 1 1 readonly,fast
failover -1 0 0 0 admin,noscript,stale
fcall -3 0 0 0 noscript,stale,skip_monitor,no_mandatory_keys,movablekeys
fcall_ro -3 0 0 0 readonly,noscript,stale,skip_monitor,no_mandatory_keys,movablekeys
flushall -1 0 0 0 write request_policy:all_shards,response_policy:all_succeeded
flushdb -1 0 0 0 write request_policy:all_shards,response_policy:all_succeeded
function -2 0 0 0 -
function|delete 3 0 0 0 write,noscript request_policy:all_shards,response_policy:all_succeeded
function|dump 2 0 0 0 noscript
function|flush -2 0 0 0 write,noscript request_policy:all_shards,response_policy:all_succeeded
function|help 2 0 0 0 loading,stale
function|kill 2 0 0 0 noscript,allow_busy request_policy:all_shards,response_policy:one_succeeded
function|list -2 0 0 0 noscript nondeterministic_output_order
function|load -3 0 0 0 write,denyoom,noscript request_policy:all_shards,response_policy:all_succeeded
function|restore -3 0 0 0 write,denyoom,noscript request_policy:all_shards,response_policy:all_succeeded
function|stats 2 0 0 0 noscript,allow_busy nondeterministic_output,request_policy:all_shards,response_policy:special
geoadd -5 1 1 1 write,denyoom
geodist -4 1 1 1 readonly
geohash -2 1 1 1 readonly
geopos -2 1 1 1 readonly
georadius -6 1 1 1 write,denyoom,movablekeys
georadius_ro -6 1 1 1 readonly
georadiusbymember -5 1 1 1 write,denyoom,movablekeys
georadiusbymember_ro -5 1 1 1 readonly
geosearch -7 1 1 1 readonly
geosearchstore -8 1 2 1 write,denyoom
get 2 1 1 1 readonly,fast
getbit 3 1 1 1 readonly,fast
getdel 2 1 1 1 write,fast
getex -2 1 1 1 write,fast
getrange 4 1 1 1 readonly
getset 3 1 1 1 write,denyoom,fast
hdel -3 1 1 1 write,fast
hello -1 0 0 0 noscript,loading,stale,fast,no_auth,allow_busy
hexists 3 1 1 1 readonly,fast
hget 3 1 1 1 readonly,fast
hgetall 2 1 1 1 readonly nondeterministic_output_order
hincrby 4 1 1 1 write,denyoom,fast
hincrbyfloat 4 1 1 1 write,denyoom,fast
hkeys 2 1 1 1 readonly nondeterministic_output_order
hlen 2 1 1 1 readonly,fast
hmget -3 1 1 1 readonly,fast
hmset -4 1 1 1 write,denyoom,fast
hrandfield -2 1 1 1 readonly nondeterministic_output
hscan -3 1 1 1 readonly nondeterministic_output
hset -4 1 1 1 write,denyoom,fast
hsetnx 4 1 1 1 write,denyoom,fast
hstrlen 3 1 1 1 readonly,fast
hvals 2 1 1 1 readonly nondeterministic_output_order
incr 2 1 1 1 write,denyoom,fast
incrby 3 1 1 1 write,denyoom,fast
incrbyfloat 3 1 1 1 write,denyoom,fast
info -1 0 0 0 loading,stale nondeterministic_output,request_policy:all_shards,response_policy:special
keys 2 0 0 0 readonly request_policy:all_shards,nondeterministic_output_order
lastsave 1 0 0 0 loading,stale,fast nondeterministic_output
latency -2 0 0 0 -
latency|doctor 2 0 0 0 admin,noscript,loading,stale nondeterministic_output,request_policy:all_nodes,response_policy:special
latency|graph 3 0 0 0 admin,noscript,loading,stale nondeterministic_output,request_policy:all_nodes,response_policy:special
latency|help 2 0 0 0 loading,stale
latency|histogram -2 0 0 0 admin,noscript,loading,stale nondeterministic_output,request_policy:all_nodes,response_policy:special
latency|history 3 0 0 0 admin,noscript,loading,stale nondeterministic_output,request_policy:all_nodes,response_policy:special
latency|latest 2 0 0 0 admin,noscript,loading,stale nondeterministic_output,request_policy:all_nodes,response_policy:special
latency|reset -2 0 0 0 admin,noscript,loading,stale request_policy:all_nodes,response_policy:all_succeeded
lcs -3 1 2 1 readonly
lindex 3 1 1 1 readonly
linsert 5 1 1 1 write,denyoom
llen 2 1 1 1 readonly,fast
lmove 5 1 2 1 write,denyoom
lmpop -4 0 0 0 write,movablekeys
lolwut -1 0 0 0 readonly,fast
lpop -2 1 1 1 write,fast
lpos -3 1 1 1 readonly
lpush -3 1 1 1 write,denyoom,fast
lpushx -3 1 1 1 write,denyoom,fast
lrange 4 1 1 1 readonly
lrem 4 1 1 1 write
lset 4 1 1 1 write,denyoom
ltrim 4 1 1 1 write
memory -2 0 0 0 -
memory|doctor 2 0 0 0 - nondeterministic_output,request_policy:all_shards,response_policy:special
memory|help 2 0 0 0 loading,stale
memory|malloc-stats 2 0 0 0 - nondeterministic_output,request_policy:all_shards,response_policy:special
memory|purge 2 0 0 0 - request_policy:all_shards,response_policy:all_succeeded
memory|stats 2 0 0 0 - nondeterministic_output,request_policy:all_shards,response_policy:special
memory|usage -3 2 2 1 readonly
mget -2 1 -1 1 readonly,fast request_policy:multi_shard
migrate -6 3 3 1 write,movablekeys nondeterministic_output
module -2 0 0 0 -
module|help 2 0 0 0 loading,stale
module|list 2 0 0 0 admin,noscript nondeterministic_output_order
module|load -3 0 0 0 admin,noscript,no_async_loading
module|loadex -3 0 0 0 admin,noscript,no_async_loading
module|unload 3 0 0 0 admin,noscript,no_async_loading
monitor 1 0 0 0 admin,noscript,loading,stale
move 3 1 1 1 write,fast
mset -3 1 -1 2 write,denyoom request_policy:multi_shard,response_policy:all_succeeded
msetnx -3 1 -1 2 write,denyoom request_policy:multi_shard,response_policy:agg_min
multi 1 0 0 0 noscript,loading,stale,fast,allow_busy
object -2 0 0 0 -
object|encoding 3 2 2 1 readonly nondeterministic_output
object|freq 3 2 2 1 readonly nondeterministic_output
object|help 2 0 0 0 loading,stale
object|idletime 3 2 2 1 readonly nondeterministic_output
object|refcount 3 2 2 1 readonly nondeterministic_output
persist 2 1 1 1 write,fast
pexpire -3 1 1 1 write,fast
pexpireat -3 1 1 1 write,fast
pexpiretime 2 1 1 1 readonly,fast
pfadd -2 1 1 1 write,denyoom,fast
pfcount -2 1 -1 1 readonly
pfdebug 3 2 2 1 write,denyoom,admin
pfmerge -2 1 -1 1 write,denyoom
pfselftest 1 0 0 0 admin
ping -1 0 0 0 fast request_policy:all_shards,response_policy:all_succeeded
psetex 4 1 1 1 write,denyoom
psubscribe -2 0 0 0 pubsub,noscript,loading,stale
psync -3 0 0 0 admin,noscript,no_async_loading,no_multi
pttl 2 1 1 1 readonly,fast nondeterministic_output
publish 3 0 0 0 pubsub,loading,stale,fast
pubsub -2 0 0 0 -
pubsub|channels -2 0 0 0 pubsub,loading,stale
pubsub|help 2 0 0 0 loading,stale
pubsub|numpat 2 0 0 0 pubsub,loading,stale
pubsub|numsub -2 0 0 0 pubsub,loading,stale
pubsub|shardchannels -2 0 0 0 pubsub,loading,stale
pubsub|shardnumsub -2 0 0 0 pubsub,loading,stale
punsubscribe -1 0 0 0 pubsub,noscript,loading,stale
quit -1 0 0 0 noscript,loading,stale,fast,no_auth,allow_busy
randomkey 1 0 0 0 readonly request_policy:all_shards,nondeterministic_output
readonly 1 0 0 0 loading,stale,fast
readwrite 1 0 0 0 loading,stale,fast
rename 3 1 2 1 write
renamenx 3 1 2 1 write,fast
replconf -1 0 0 0 admin,noscript,loading,stale,allow_busy
replicaof 3 0 0 0 admin,noscript,stale,no_async_loading
reset 1 0 0 0 noscript,loading,stale,fast,no_auth,allow_busy
restore -4 1 1 1 write,denyoom
restore-asking -4 1 1 1 write,denyoom,asking
role 1 0 0 0 noscript,loading,stale,fast
rpop -2 1 1 1 write,fast
rpoplpush 3 1 2 1 write,denyoom
rpush -3 1 1 1 write,denyoom,fast
rpushx -3 1 1 1 write,denyoom,fast
sadd -3 1 1 1 write,denyoom,fast
save 1 0 0 0 admin,noscript,no_async_loading,no_multi
scan -2 0 0 0 readonly nondeterministic_output,request_policy:special
scard 2 1 1 1 readonly,fast
script -2 0 0 0 -
script|debug 3 0 0 0 noscript
script|exists -3 0 0 0 noscript request_policy:all_shards,response_policy:agg_logical_and
script|flush -2 0 0 0 noscript request_policy:all_nodes,response_policy:all_succeeded
script|help 2 0 0 0 loading,stale
script|kill 2 0 0 0 noscript,allow_busy request_policy:all_shards,response_policy:one_succeeded
script|load 3 0 0 0 noscript,stale request_policy:all_nodes,response_policy:all_succeeded
sdiff -2 1 -1 1 readonly nondeterministic_output_order
sdiffstore -3 1 -1 1 write,denyoom
select 2 0 0 0 loading,stale,fast
set -3 1 1 1 write,denyoom
setbit 4 1 1 1 write,denyoom
setex 4 1 1 1 write,denyoom
setnx 3 1 1 1 write,denyoom,fast
setrange 4 1 1 1 write,denyoom
shutdown -1 0 0 0 admin,noscript,loading,stale,no_multi,allow_busy
sinter -2 1 -1 1 readonly nondeterministic_output_order
sintercard -3 0 0 0 readonly,movablekeys
sinterstore -3 1 -1 1 write,denyoom
sismember 3 1 1 1 readonly,fast
slaveof 3 0 0 0 admin,noscript,stale,no_async_loading
slowlog -2 0 0 0 -
slowlog|get -2 0 0 0 admin,loading,stale request_policy:all_nodes,nondeterministic_output
slowlog|help 2 0 0 0 loading,stale
slowlog|len 2 0 0 0 admin,loading,stale request_policy:all_nodes,response_policy:agg_sum,nondeterministic_output
slowlog|reset 2 0 0 0 admin,loading,stale request_policy:all_nodes,response_policy:all_succeeded
smembers 2 1 1 1 readonly nondeterministic_output_order
smismember -3 1 1 1 readonly,fast
smove 4 1 2 1 write,fast
sort -2 1 1 1 write,denyoom,movablekeys
sort_ro -2 1 1 1 readonly,movablekeys
spop -2 1 1 1 write,fast nondeterministic_output
spublish 3 1 1 1 pubsub,loading,stale,fast
srandmember -2 1 1 1 readonly nondeterministic_output
srem -3 1 1 1 write,fast
sscan -3 1 1 1 readonly nondeterministic_output
ssubscribe -2 1 -1 1 pubsub,noscript,loading,stale
strlen 2 1 1 1 readonly,fast
subscribe -2 0 0 0 pubsub,noscript,loading,stale
substr 4 1 1 1 readonly
sunion -2 1 -1 1 readonly nondeterministic_output_order
sunionstore -3 1 -1 1 write,denyoom
sunsubscribe -1 1 -1 1 pubsub,noscript,loading,stale
swapdb 3 0 0 0 write,fast
sync 1 0 0 0 admin,noscript,no_async_loading,no_multi
time 1 0 0 0 loading,stale,fast nondeterministic_output
touch -2 1 -1 1 readonly,fast request_policy:multi_shard,response_policy:agg_sum
ttl 2 1 1 1 readonly,fast nondeterministic_output
type 2 1 1 1 readonly,fast
unlink -2 1 -1 1 write,fast request_policy:multi_shard,response_policy:agg_sum
unsubscribe -1 0 0 0 pubsub,noscript,loading,stale
unwatch 1 0 0 0 noscript,loading,stale,fast,allow_busy
wait 3 0 0 0 noscript request_policy:all_shards,response_policy:agg_min
watch -2 1 -1 1 noscript,loading,stale,fast,allow_busy
xack -4 1 1 1 write,fast
xadd -5 1 1 1 write,denyoom,fast nondeterministic_output
xautoclaim -6 1 1 1 write,fast nondeterministic_output
xclaim -6 1 1 1 write,fast nondeterministic_output
xdel -3 1 1 1 write,fast
xgroup -2 0 0 0 -
xgroup|create -5 2 2 1 write,denyoom
xgroup|createconsumer 5 2 2 1 write,denyoom
xgroup|delconsumer 5 2 2 1 write
xgroup|destroy 4 2 2 1 write
xgroup|help 2 0 0 0 loading,stale
xgroup|setid -5 2 2 1 write
xinfo -2 0 0 0 -
xinfo|consumers 4 2 2 1 readonly nondeterministic_output
xinfo|groups 3 2 2 1 readonly
xinfo|help 2 0 0 0 loading,stale
xinfo|stream -3 2 2 1 readonly
xlen 2 1 1 1 readonly,fast
xpending -3 1 1 1 readonly nondeterministic_output
xrange -4 1 1 1 readonly
xread -4 0 0 0 readonly,blocking,movablekeys
xreadgroup -7 0 0 0 write,blocking,movablekeys
xrevrange -4 1 1 1 readonly
xsetid -3 1 1 1 write,denyoom,fast
xtrim -4 1 1 1 write nondeterministic_output
zadd -4 1 1 1 write,denyoom,fast
zcard 2 1 1 1 readonly,fast
zcount 4 1 1 1 readonly,fast
zdiff -3 0 0 0 readonly,movablekeys
zdiffstore -4 1 1 1 write,denyoom,movablekeys
zincrby 4 1 1 1 write,denyoom,fast
zinter -3 0 0 0 readonly,movablekeys
zintercard -3 0 0 0 readonly,movablekeys
zinterstore -4 1 1 1 write,denyoom,movablekeys
zlexcount 4 1 1 1 readonly,fast
zmpop -4 0 0 0 write,movablekeys
zmscore -3 1 1 1 readonly,fast
zpopmax -2 1 1 1 write,fast
zpopmin -2 1 1 1 write,fast
zrandmember -2 1 1 1 readonly nondeterministic_output
zrange -4 1 1 1 readonly
zrangebylex -4 1 1 1 readonly
zrangebyscore -4 1 1 1 readonly
zrangestore -5 1 2 1 write,denyoom
zrank 3 1 1 1 readonly,fast
zrem -3 1 1 1 write,fast
zremrangebylex 4 1 1 1 write
zremrangebyrank 4 1 1 1 write
zremrangebyscore 4 1 1 1 write
zrevrange -4 1 1 1 readonly
zrevrangebylex -4 1 1 1 readonly
zrevrangebyscore -4 1 1 1 readonly
zrevrank 3 1 1 1 readonly,fast
zscan -3 1 1 1 readonly nondeterministic_output
zscore 3 1 1 1 readonly,fast
zunion -3 0 0 0 readonly,movablekeys
zunionstore -4 1 1 1 write,denyoom,movablekeys
host: -1 0 0 0 loading,stale
post -1 0 0 0 loading,stale
`;
