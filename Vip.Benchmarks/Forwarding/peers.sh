# Shared by compare-haproxy.sh and cpu-per-request.sh (sourced, not run): the vipd to measure, a scratch folder,
# the pids of every peer started (stopped by pid on exit), and HAProxy's global/defaults section as the
# side-by-side runs use it (tcp mode, nbthread 2, maxconn near 4000 because the open-file limit is 20000).
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
vipd=${VIPD:-$here/Vip.Daemons/bin/Release/net10.0/vipd}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

haproxy_preamble() {
  cat <<CFG
global
  nbthread 2
  maxconn 4000
defaults
  mode tcp
  timeout connect 3s
  timeout client 5m
  timeout server 5m
CFG
}
