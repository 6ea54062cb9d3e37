#!/usr/bin/env bash
# The GPU checks and figures in one call on a lent GPU machine (the device tool), where python3
# holds a CUDA build of torch and the project is not installed (trainable/ needs only torch,
# numpy, pillow, tqdm): first that steps replayed as CUDA graphs compute what eager ones do
# (tests/trainable/test_cuda_graphs.py), then the trainer's it/s against the plain reference loop
# and its host syncs per iteration (train_speed.py), then the aggregate it/s of 1, 2, 4 and 8
# trials sharing the GPU with CUDA graphs, and of 1 and 8 eager (gpu_sharing.py). About 6-7
# minutes; each step's output is also written to $OUT (or here). A bare machine first draws the
# built-in data set (about 2 s here) and trains the judge once (1500 steps).
#
#     bash benchmarks/gpu_check.sh
set -o pipefail
cd "$(dirname "$0")/.." || exit 1
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
out=${OUT:-.}
python=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$out/gpu.txt"
"$python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())" 2>&1 |
    tee -a "$out/gpu.txt"
# First that graphed steps compute what eager ones do (pytest is on that machine's image).
timeout 240 "$python" -m pytest -q -p no:cacheprovider tests/trainable/test_cuda_graphs.py 2>&1 | tee "$out/cuda_tests.txt"
timeout 180 "$python" benchmarks/train_speed.py --device cuda 2>&1 | tee "$out/train_speed.txt"
timeout 300 "$python" benchmarks/gpu_sharing.py --trials 1,2,4,8 --seconds 15 2>&1 | tee "$out/gpu_sharing.txt"
timeout 120 "$python" benchmarks/gpu_sharing.py --trials 1,8 --seconds 15 --eager 2>&1 | tee -a "$out/gpu_sharing.txt"
