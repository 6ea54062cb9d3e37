#!/usr/bin/env bash
# The second of the two GPU calls (the first: benchmarks/gpu_check.sh): the paper's regime as a real
# study on the lent GPU, end to end: Ray with four trials on a quarter of the GPU each, each trial's
# steps replayed as CUDA graphs inside its Ray worker, checkpoints in the study folder, the Optuna
# store and the summary (examples/paper_gpu.toml: V0, V1, V2 and the recipe with the paper's G,
# $ITERATIONS iterations each, default 30000). Needs the wheels of benchmarks/gpu_wheels.sh, run
# here first and carried (carry [".whl"]). Writes to $OUT: the study folder without its
# checkpoints (hundreds of MB at the paper's widths), its summary, and the log. The dashboard is
# written back here: cgan-study analyze <the study folder>. Where Ray does not start there, the
# same regime runs as plain processes (benchmarks/paper_regime.py) in the time left.
#
#     bash benchmarks/gpu_study.sh
set -o pipefail
cd "$(dirname "$0")/.." || exit 1
out=${OUT:-.}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl ||
    { echo "no wheels: run benchmarks/gpu_wheels.sh here first and carry .whl" | tee "$out/gpu_study.txt"; exit 1; }
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 RAY_USAGE_STATS_ENABLED=0
sed "s/^iterations = .*/iterations = ${ITERATIONS:-30000}/" examples/paper_gpu.toml > /tmp/paper_gpu.toml
start=$(date +%s)
timeout "${STUDY_SECONDS:-400}" python3 -m study study run --config /tmp/paper_gpu.toml --name paper \
    --storage "$out/studies" 2>&1 | tee "$out/gpu_study.txt"
status=$?
echo "exit: $status after $(( $(date +%s) - start )) s" | tee -a "$out/gpu_study.txt"
python3 -m study study status paper --storage "$out/studies" 2>&1 | tee -a "$out/gpu_study.txt"
if [ "$status" -ne 0 ] && [ $(( $(date +%s) - start )) -lt 150 ]; then
    # Ray did not run there: the same regime as plain processes, so the figures and grids still come back.
    echo "the study did not run: the paper's regime as plain processes instead" | tee -a "$out/gpu_study.txt"
    timeout 330 python3 benchmarks/paper_regime.py --out "$out/paper" --iterations "${ITERATIONS:-30000}" \
        --eval-every 2500 --minutes 4.5 --device cuda 2>&1 | tee -a "$out/gpu_study.txt"
fi
find "$out" -type d -name 'checkpoint_*' -prune -exec rm -rf {} +
du -sh "$out" 2>&1 | tee -a "$out/gpu_study.txt"
