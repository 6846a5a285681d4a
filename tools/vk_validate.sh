#!/usr/bin/env bash
# Runs a command (default: cargo test) with the Khronos validation layer on every Vulkan
# instance it creates, synchronization validation included (tools/vk_layer_settings.txt,
# or VK_LAYER_SETTINGS_PATH where set), and fails if the layer reported any error or
# warning, or never reported itself active (so a clean run means it ran). lavapipe runs
# dispatches one after another, so a missing barrier cannot show in its results; the
# layer sees it on any driver. Needs Debian's vulkan-validationlayers. The layer writes to
# each process's stderr: what a test's child process reports stays in that child's
# captured output, so the in-process tests are the ones checked.
#   bash tools/vk_validate.sh [COMMAND ...]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ $# -gt 0 ] || set -- cargo test
log=$(mktemp)
trap 'rm -f "$log"' EXIT
export VK_LAYER_SETTINGS_PATH="${VK_LAYER_SETTINGS_PATH:-$here/vk_layer_settings.txt}"
export VK_INSTANCE_LAYERS=VK_LAYER_KHRONOS_validation
"$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
active=$(grep -c "Khronos Validation Layer Active" "$log")
# Debug builds' SPIR-V carries naga's debug info, whose source language (10, WGSL) is newer
# than Debian 12's layer: that one report is not about netlens.
reports=$(grep -E "\((ERROR|WARN) / [A-Z]+\): msgNum" "$log" \
    | grep -v "SPIR-V module not valid: Invalid source language operand: 10$" \
    | sort | uniq -c | sort -rn)
if [ "$rc" -ne 0 ]; then
    echo "vk_validate: the command failed ($rc)" >&2
    exit "$rc"
fi
if [ "$active" -eq 0 ]; then
    echo "vk_validate: the validation layer never started (no Vulkan instance, or the layer is not installed: apt-get install vulkan-validationlayers)" >&2
    exit 1
fi
if [ -n "$reports" ]; then
    echo "vk_validate: the validation layer reported:" >&2
    echo "$reports" | cut -c1-400 >&2
    exit 1
fi
echo "vk_validate: $active Vulkan instances ran under the validation layer; it reported nothing"
