#!/bin/bash
# Network dissection split over a Slurm array: 8 shards per pass, two passes.
#   sbatch --export=ALL docs/dissect-slurm.sh     (from the repository root)
# Pass 1 writes each shard's threshold state, one merge makes the thresholds, pass 2
# counts each shard against them, and the last merge writes the results, equal to an
# unsharded run file for file. Edit MODEL, DATA, LAYERS and OUT; every job must see
# the same paths (a shared filesystem).
#SBATCH --job-name=dissect-submit
#SBATCH --time=00:05:00
set -euo pipefail
MODEL=${MODEL:-models/shapes-vgg.safetensors}
DATA=${DATA:-/data/broden}
LAYERS=${LAYERS:-"--layer features.12 --layer features.15"}
OUT=${OUT:-/scratch/$USER/dissect}
N=${N:-8}
mkdir -p "$OUT"

pass1=$(sbatch --parsable --array=0-$((N - 1)) --gres=gpu:1 --time=02:00:00 \
    --wrap "netlens dissect $MODEL $DATA $LAYERS --shard \$SLURM_ARRAY_TASK_ID/$N --out $OUT/thresholds-\$SLURM_ARRAY_TASK_ID")
merge1=$(sbatch --parsable --dependency=afterok:$pass1 --time=00:30:00 \
    --wrap "netlens dissect merge $OUT/thresholds-* --out $OUT/thresholds")
pass2=$(sbatch --parsable --dependency=afterok:$merge1 --array=0-$((N - 1)) --gres=gpu:1 --time=02:00:00 \
    --wrap "netlens dissect $MODEL $DATA $LAYERS --shard \$SLURM_ARRAY_TASK_ID/$N --thresholds $OUT/thresholds --out $OUT/counts-\$SLURM_ARRAY_TASK_ID")
sbatch --dependency=afterok:$pass2 --time=00:30:00 \
    --wrap "netlens dissect merge $OUT/counts-* --out $OUT/result --html"
echo "submitted: thresholds $pass1, merge $merge1, counts $pass2; results in $OUT/result"
