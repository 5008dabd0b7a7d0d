#!/usr/bin/env bash
# Manual side-by-side of `vipd vip` and HAProxy (tcp mode, nbthread 2) on loopback, in one run, interleaved.
# Usage: Vip.Benchmarks/Forwarding/compare-haproxy.sh [rounds]   (needs haproxy, iperf3, redis-server, redis-benchmark)
# Prints one line per measurement; docs/benchmarks.md ("VIP box") holds the figures and how to read them.
set -euo pipefail
rounds=${1:-3}
source "$(dirname "$0")/peers.sh"

redis-server --port 26379 --save "" --appendonly no >/dev/null & pids+=($!)
redis-server --port 26380 --save "" --appendonly no >/dev/null & pids+=($!)
iperf3 -s -p 25201 >/dev/null 2>&1 & pids+=($!)

{ haproxy_preamble; cat <<CFG
frontend iperf
  bind 127.0.0.1:26001
  default_backend iperf
backend iperf
  server s1 127.0.0.1:25201
frontend redis
  bind 127.0.0.1:26101
  default_backend redis
backend redis
  balance roundrobin
  server r1 127.0.0.1:26379
  server r2 127.0.0.1:26380
CFG
} > "$work/haproxy.cfg"
haproxy -f "$work/haproxy.cfg" -db >/dev/null 2>&1 & pids+=($!)
"$vipd" vip --listen 127.0.0.1:26002 --backends 127.0.0.1:25201 --Logging:LogLevel:Default Warning >/dev/null 2>&1 & pids+=($!)
"$vipd" vip --listen 127.0.0.1:26102 --backends 127.0.0.1:26379,127.0.0.1:26380 --Logging:LogLevel:Default Warning >/dev/null 2>&1 & pids+=($!)
sleep 3

iperf() { iperf3 -c 127.0.0.1 -p "$1" -t "${IPERF_SECONDS:-5}" -f g "${@:2}" | awk '/receiver/ {print $7}'; }
ping() { redis-benchmark -p "$1" -t ping_mbulk -c 50 -n "${REDIS_N:-200000}" "${@:2}" --csv | awk -F'"' 'NR==2 {print $4, "p50", $10, "p99", $14}'; }

for r in $(seq "$rounds"); do
  echo "round $r"
  echo "  iperf3 Gbit/s   direct $(iperf 25201)  haproxy $(iperf 26001)  vip $(iperf 26002)"
  echo "  iperf3 -R       direct $(iperf 25201 -R)  haproxy $(iperf 26001 -R)  vip $(iperf 26002 -R)"
  echo "  PING rps        direct $(ping 26379)"
  echo "                  haproxy $(ping 26101)"
  echo "                  vip     $(ping 26102)"
  echo "  PING -P16 rps   direct $(ping 26379 -P 16)"
  echo "                  haproxy $(ping 26101 -P 16)"
  echo "                  vip     $(ping 26102 -P 16)"
done
