#!/usr/bin/env bash
# The libFuzzer part of `make test` (registered by fuzz/ctest.cmake):
#   smoke.sh build SRC_DIR FUZZ_BUILD_DIR   builds the fuzz targets; configures FUZZ_BUILD_DIR
#                                          with clang (-DNS_FUZZ=ON) first if it is not a fuzz build yet
#   smoke.sh run SRC_DIR FUZZ_BUILD_DIR NAME SECONDS
#                                          runs fuzz/NAME_fuzz for SECONDS over fuzz/corpus/NAME
#                                          (new inputs go to a temporary directory, not the repository)
set -euo pipefail
mode=$1 src=$2 bin=$3
case $mode in
  build)
    if ! grep -qs '^NS_FUZZ:BOOL=ON' "$bin/CMakeCache.txt"; then
      cxx=$(command -v clang++-14 || command -v clang++ || true)
      cc=$(command -v clang-14 || command -v clang || true)
      if [ -z "$cxx" ] || [ -z "$cc" ]; then
        echo "fuzz: clang is not installed (scripts/setup.sh installs clang-14 and libclang-rt-14-dev)" >&2
        exit 1
      fi
      cmake -S "$src" -B "$bin" -G Ninja -DNS_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" >/dev/null
    fi
    cmake --build "$bin" --target fuzzers -j "$(nproc)"
    ;;
  run)
    name=$4 secs=$5
    exe="$bin/fuzz/${name}_fuzz"
    [ -x "$exe" ] || { echo "fuzz: $exe is not built (test fuzz_build)" >&2; exit 1; }
    work=$(mktemp -d "${TMPDIR:-/tmp}/ns-fuzz-$name-XXXXXX")
    trap 'rm -rf "$work"' EXIT
    mkdir -p "$bin/fuzz-artifacts"
    dict=()
    [ "$name" = csv ] || dict=(-dict="$src/fuzz/json.dict")
    set +e
    # A fixed seed and a bounded number of runs make the run in `make test` a prefix of one
    # deterministic sequence (checked to pass in full before committing), so CI is not flaky;
    # long exploratory runs (fuzz/longrun.sh) use random seeds. NS_FUZZ_SEED / NS_FUZZ_RUNS
    # override.
    "$exe" -seed="${NS_FUZZ_SEED:-1}" -runs="${NS_FUZZ_RUNS:-150000}" -max_total_time="$secs" -rss_limit_mb=2048 -max_len=16384 -timeout=20 "${dict[@]}" \
      -print_final_stats=1 -artifact_prefix="$bin/fuzz-artifacts/$name-" "$work" "$src/fuzz/corpus/$name" >"$work/log" 2>&1
    rc=$?
    set -e
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added)' "$work/log" || true
    if [ $rc -ne 0 ]; then
      echo "fuzz: ${name}_fuzz FAILED (exit $rc); the input is in $bin/fuzz-artifacts/; log tail:" >&2
      tail -60 "$work/log" >&2
      exit 1
    fi
    grep -E '^Done [0-9]+ runs' "$work/log" || true
    ;;
  *)
    echo "usage: smoke.sh build SRC BIN | run SRC BIN NAME SECONDS" >&2
    exit 2
    ;;
esac
