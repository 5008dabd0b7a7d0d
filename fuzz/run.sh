#!/usr/bin/env bash
# Runs the Vip fuzzers under libFuzzer for real.
#
#   fuzz/run.sh [MINUTES] [TARGET...]      default: 5 minutes each, targets frame proxy (and requirement once it exists)
#
# What it does, each step re-done on every run:
#   1. builds fuzz/Vip.Fuzz in Release into fuzz/work/bin and instruments the Vip.Core.dll there with SharpFuzz
#      (the dotnet tool pinned in fuzz/dotnet-tools.json);
#   2. builds the libFuzzer driver (fuzz/driver/vip-libfuzzer-driver.c, clang -fsanitize=fuzzer; needs Debian's
#      clang and libclang-rt-dev, installed here when missing and running as root);
#   3. per target: copies the seed corpus fuzz/corpus/TARGET into fuzz/work/TARGET/corpus (kept between runs, so
#      coverage accumulates) and runs libFuzzer for MINUTES with the target's dictionary. A crash (any exception
#      other than VipProtocolException, an invariant broken, the .NET process dying, or a hang past 10 s) stops the
#      target and leaves the input in fuzz/findings/TARGET/ (crash-*, timeout-*). Reproduce it with
#      `dotnet fuzz/work/bin/Vip.Fuzz.dll TARGET fuzz/findings/TARGET/crash-...`.
#   FUZZ_MERGE=1 afterwards merges the inputs that add coverage back into fuzz/corpus/TARGET (commit them).
# Exit status: 0 when no target found anything, 1 otherwise.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
minutes="${1:-5}"
shift || true
targets=("$@")
work="$here/work"
bin="$work/bin"

if [ ${#targets[@]} -eq 0 ]; then
  targets=(frame proxy)
  if grep -q '"requirement"' "$here/Vip.Fuzz/FuzzTargets.cs"; then targets+=(requirement); fi
fi

clang=""
for c in clang clang-19 clang-18 clang-17 clang-16 clang-15 clang-14; do
  if command -v "$c" >/dev/null 2>&1; then clang="$c"; break; fi
done
if [ -z "$clang" ] || ! echo 'int LLVMFuzzerTestOneInput(const char*d,unsigned long n){return 0;}' \
    | "$clang" -x c -fsanitize=fuzzer -o /dev/null - >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "run.sh: installing clang and libFuzzer's runtime (Debian packages clang, libclang-rt-dev)"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q clang libclang-rt-dev >/dev/null \
      || DEBIAN_FRONTEND=noninteractive apt-get install -y -q clang-14 libclang-rt-14-dev >/dev/null
    for c in clang clang-14; do command -v "$c" >/dev/null 2>&1 && { clang="$c"; break; }; done
  else
    echo "run.sh: need clang with libFuzzer (-fsanitize=fuzzer); install clang and libclang-rt-dev" >&2
    exit 2
  fi
fi

echo "run.sh: building Vip.Fuzz (Release) into $bin"
rm -rf "$bin"
dotnet build "$here/Vip.Fuzz/Vip.Fuzz.csproj" -c Release -o "$bin" -nologo -v q -p:ContinuousIntegrationBuild=false >/dev/null
(cd "$here" && dotnet tool restore >/dev/null && dotnet tool run sharpfuzz "$bin/Vip.Core.dll" >/dev/null)
echo "run.sh: instrumented $bin/Vip.Core.dll with SharpFuzz"

"$clang" -O2 -fsanitize=fuzzer "$here/driver/vip-libfuzzer-driver.c" -o "$work/vip-libfuzzer-driver"

found=0
for t in "${targets[@]}"; do
  mkdir -p "$work/$t/corpus" "$here/findings/$t"
  cp -n "$here/corpus/$t/"* "$work/$t/corpus/" 2>/dev/null || true
  dict=()
  [ -f "$here/dict/$t.dict" ] && dict=(-dict="$here/dict/$t.dict")
  echo "run.sh: fuzzing '$t' for $minutes min ($(ls "$work/$t/corpus" | wc -l) inputs in its corpus)"
  log="$work/$t/libfuzzer.log"
  set +e
  "$work/vip-libfuzzer-driver" "$work/$t/corpus" "${dict[@]}" \
    -max_total_time=$((minutes * 60)) -timeout=10 -max_len=8192 -len_control=100 -print_final_stats=1 \
    -artifact_prefix="$here/findings/$t/" \
    --exec="$(command -v dotnet)" --arg="$bin/Vip.Fuzz.dll" --arg="$t" >"$log" 2>&1
  status=$?
  set -e
  grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added)' "$log" | sed "s/^/  $t: /" || true
  grep -E 'cov: [0-9]+' "$log" | tail -1 | sed "s/^/  $t: last status: /" || true
  if [ $status -ne 0 ]; then
    found=1
    echo "run.sh: '$t' FOUND A PROBLEM (exit $status); input in fuzz/findings/$t/, log in $log:"
    grep -E 'Exception|FuzzInvariant|died|timeout|Test unit written' "$log" | head -20
  fi
  if [ "${FUZZ_MERGE:-0}" = "1" ]; then
    "$work/vip-libfuzzer-driver" -merge=1 "$here/corpus/$t" "$work/$t/corpus" \
      --exec="$(command -v dotnet)" --arg="$bin/Vip.Fuzz.dll" --arg="$t" >"$work/$t/merge.log" 2>&1 || true
    echo "run.sh: merged into fuzz/corpus/$t: $(ls "$here/corpus/$t" | wc -l) files"
  fi
done
exit $found
