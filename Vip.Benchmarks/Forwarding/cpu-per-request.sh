#!/usr/bin/env bash
# CPU time the proxy itself spends per request, `vipd vip` beside HAProxy (tcp mode, nbthread 2), on loopback.
# Unlike a rate, CPU per request hardly moves with the machine's load (other processes delay the proxy, they do not
# make it burn more cycles), so it shows a lever's effect on a shared, loaded machine where rates swing 2×.
# Usage: Vip.Benchmarks/Forwarding/cpu-per-request.sh [rounds]   (needs haproxy, redis-server, redis-benchmark)
# Env: VIPD (the vipd to measure), REDIS_N (requests per load, default 200000), VIPD_ENV (extra env for vipd).
set -euo pipefail
rounds=${1:-3}
source "$(dirname "$0")/peers.sh"
n=${REDIS_N:-200000}
base=$((20000 + RANDOM % 20000))

redis-server --port $((base)) --save "" --appendonly no >/dev/null & pids+=($!)
redis-server --port $((base + 1)) --save "" --appendonly no >/dev/null & pids+=($!)
{ haproxy_preamble; cat <<CFG
frontend redis
  bind 127.0.0.1:$((base + 2))
  default_backend redis
backend redis
  balance roundrobin
  server r1 127.0.0.1:$((base))
  server r2 127.0.0.1:$((base + 1))
CFG
} > "$work/haproxy.cfg"
haproxy -f "$work/haproxy.cfg" -db >/dev/null 2>&1 & hpid=$!; pids+=($hpid)
env ${VIPD_ENV:-} "$vipd" vip --listen 127.0.0.1:$((base + 3)) --backends 127.0.0.1:$((base)),127.0.0.1:$((base + 1)) \
  --Logging:LogLevel:Default Warning >/dev/null 2>&1 & vpid=$!; pids+=($vpid)
sleep 3

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
# Prints "µs CPU per request" of the process $1 while redis-benchmark runs against port $2 with the rest as switches.
cost() {
  local pid=$1 port=$2 count=$3; shift 3
  local before after
  before=$(ticks "$pid")
  timeout 300 redis-benchmark -p "$port" -t ping_mbulk -c 50 -n "$count" -q "$@" >/dev/null
  after=$(ticks "$pid")
  awk -v t=$((after - before)) -v hz="$hz" -v n="$count" 'BEGIN { printf "%.2f", t / hz * 1e6 / n }'
}

# Warm-up (JIT tiers for vipd) before anything is counted.
timeout 120 redis-benchmark -p $((base + 3)) -t ping_mbulk -c 50 -n 50000 -q >/dev/null
timeout 120 redis-benchmark -p $((base + 3)) -t ping_mbulk -c 50 -n 5000 -k 0 -q >/dev/null
echo "µs of proxy CPU per request (lower is better); load: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$rounds"); do
  echo "round $r  PING -c 50        haproxy $(cost $hpid $((base + 2)) "$n")  vip $(cost $vpid $((base + 3)) "$n")"
  echo "round $r  PING -c 50 -P 16  haproxy $(cost $hpid $((base + 2)) "$n" -P 16)  vip $(cost $vpid $((base + 3)) "$n" -P 16)"
  echo "round $r  churn -k 0        haproxy $(cost $hpid $((base + 2)) $((n / 10)) -k 0)  vip $(cost $vpid $((base + 3)) $((n / 10)) -k 0)"
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
