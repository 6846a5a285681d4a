#!/usr/bin/env bash
# Issue 9's GPU checks in one short run on a lent GPU machine, which has PyTorch but no
# cargo, no Vulkan loader, no Captum and no Zennit.
#
#   here:  bash tools/device_check.sh prepare
#          builds the parity and kernel tests and examples/speed (stripped and gzipped, into .gpu/),
#          fetches the Vulkan/EGL loader and validation layer debs (.gl/) and the captum and zennit wheels
#          (.whl/); all three are git-ignored and together well under 64 MiB.
#   there: bash tools/device_check.sh run [reps]   (carry .gpu, .gl and .whl)
#          runs every test binary on the GPU (the adapter's own variant: `tiled` on a GPU)
#          under the Khronos validation layer (tools/vk_validate.sh: any error or warning fails),
#          then tools/speed_table.py --device cuda, which times netlens and the peers in
#          one run, PyTorch in strict FP32 beside its default, then VGG16's rows again with
#          NETLENS_WINOGRAD=off (the direct GEMMs) and with NETLENS_GEMM=tiled-subgroup
#          (the weights through subgroup broadcasts), then one quick pass of the
#          table under NETLENS_PROFILE (device time per kernel). Logs and speed.json go to
#          $OUT (or out/ where OUT is unset). TESTS, PEER_DEVICE=cpu and QUICK=1 narrow
#          it for a dry run on a machine without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
TESTS="${TESTS:-kernels backward_kernels primitives pytorch_parity captum_parity zennit_parity residual resnet vgg16_full copies stem}"

prepare() {
    rm -rf .gpu && mkdir -p .gpu/tests
    local args=()
    for t in $TESTS; do args+=(--test "$t"); done
    cargo test --release --no-run "${args[@]}" 2>&1 | tee /tmp/netlens-no-run.log
    for t in $TESTS; do
        local bin
        bin=$(grep -o "(target/release/deps/${t}-[0-9a-f]*)" /tmp/netlens-no-run.log | tr -d '()' | tail -1)
        strip -o ".gpu/tests/$t" "$bin" && gzip -9 ".gpu/tests/$t"
    done
    cargo build --release --example speed
    strip -o .gpu/speed target/release/examples/speed && gzip -9 .gpu/speed
    mkdir -p .gl .whl /tmp/amd64/partial
    local o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64)
    apt-get "${o[@]}" update -qq
    (cd .gl && apt-get "${o[@]}" download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 \
        vulkan-validationlayers)
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux2014_x86_64 -d .whl \
        "captum==$(python3 -c 'import captum; print(captum.__version__)')" \
        "zennit==$(python3 -m pip show zennit | sed -n 's/^Version: //p')"
    du -sh .gpu .gl .whl
}

run() {
    local reps=${1:-5}
    local out=${OUT:-out}
    mkdir -p "$out"
    if ! ldconfig -p | grep -q "libvulkan.so.1 "; then
        for f in .gl/*.deb; do dpkg -x "$f" /; done
        ldconfig
    fi
    if [ -e /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
        export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    fi
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
    local bin=/tmp/netlens-gpu
    mkdir -p "$bin/tests"
    for f in .gpu/speed.gz .gpu/tests/*.gz; do
        local to="$bin/${f#.gpu/}"
        gunzip -c "$f" >"${to%.gz}" && chmod +x "${to%.gz}"
    done
    export PYTHONPATH=/tmp/site
    # the tests find fixtures through the path they were built in
    mkdir -p /work && [ -e /work/main ] || ln -s "$PWD" /work/main
    nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$out/gpu.txt" || true
    local failed=0
    # every test under the validation layer, synchronization validation included
    if ! ls /usr/share/vulkan/explicit_layer.d/VkLayer_khronos_validation.json >/dev/null 2>&1; then
        dpkg -x .gl/vulkan-validationlayers_*.deb /
    fi
    for t in $TESTS; do
        echo "== $t"
        bash tools/vk_validate.sh "$bin/tests/$t" >"$out/test-$t.log" 2>&1 || failed=1
        grep -E "^test result|FAILED|panicked|^vk_validate|^ +[0-9]+ [A-Z]" "$out/test-$t.log" || true
        grep -q "^test result: ok" "$out/test-$t.log" || failed=1
    done
    PYTHONUNBUFFERED=1 python3 tools/speed_table.py --device "${PEER_DEVICE:-cuda}" --reps "$reps" ${QUICK:+--quick} \
        --speed-bin "$bin/speed" --json "$out/speed.json" 2>&1 | tee "$out/speed.txt"
    # where the time goes: device time per kernel over one quick pass of the table
    # VGG16 with Winograd's transforms off: the direct tiled GEMMs, for the same rows above
    NETLENS_WINOGRAD=off timeout 300 "$bin/speed" --reps "$reps" --only vgg ${QUICK:+--quick} \
        >"$out/speed-direct.jsonl" 2>&1 || true
    grep -E '"vgg16 (forward|gradient)' "$out/speed-direct.jsonl" || true
    # and with the weights through subgroup broadcasts (tiled-subgroup; the default on Intel)
    NETLENS_GEMM=tiled-subgroup timeout 300 "$bin/speed" --reps "$reps" --only vgg ${QUICK:+--quick} \
        >"$out/speed-subgroup.jsonl" 2>&1 || true
    grep -E '"vgg16 (forward|gradient)' "$out/speed-subgroup.jsonl" || true
    NETLENS_PROFILE=1 timeout 300 "$bin/speed" --reps 1 --quick >/dev/null 2>"$out/profile.txt" || true
    grep -A25 "netlens profile" "$out/profile.txt" | head -60 || true
    return $failed
}

case "${1:-}" in
    prepare) prepare ;;
    run) shift; run "$@" ;;
    *) echo "usage: bash tools/device_check.sh prepare | run [reps]" >&2; exit 2 ;;
esac
