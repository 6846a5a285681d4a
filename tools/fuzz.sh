#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets) for a bounded time each, starting from the
# committed seeds (fuzz/seeds/<target>) and a working corpus (fuzz/corpus/<target>, not
# committed). A crash stops its target and leaves the input in fuzz/artifacts/<target>/;
# copy it to fuzz/regressions/<target>/ so tests/fuzz_regressions.rs keeps it.
#
#   tools/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]      (default 60 s, every target)
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(model_load npy_parse image_decode broden_csv)
fi
cargo +nightly fuzz build --fuzz-dir fuzz
failed=()
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t"
    echo "== $t: ${secs}s"
    # 512 MB malloc limit: no allocation may be sized by a header beyond what the
    # (at most 64 KB) input can hold.
    cargo +nightly fuzz run --fuzz-dir fuzz "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
        -max_total_time="$secs" -max_len=65536 -malloc_limit_mb=512 -rss_limit_mb=2048 \
        -timeout=20 -print_final_stats=1 >"fuzz/$t.log" 2>&1 || failed+=("$t")
    grep -E "^(Done|stat::number_of_executed_units|SUMMARY|artifact_prefix|Test unit written)|panicked" "fuzz/$t.log" || true
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "crashed: ${failed[*]} (logs: fuzz/<target>.log)"
    exit 1
fi
