#!/usr/bin/env bash
# On the GPU machine, from the repository root with .gpu/ carried (pack-bench.sh): `bench serving --device cuda` on our
# build over the machine's PyTorch libtorch (TorchSharp 0.107's LibTorchSharp resolved every symbol against PyTorch
# 2.11.0+cu130). Figures go to $OUT. CONC (32), REQ (4), BENCH_TIMEOUT (420 s); MORE=1,8,64 runs those levels after.
# STEPS=1 first runs `bench steps --device cuda` (decode step vs rows, engine only; STEPS_TIMEOUT, 240 s), and with HOG=N
# again beside N busy processes; SERVING=0 skips the serving bench.
set -uo pipefail
exec > >(tee -a "$OUT/log") 2>&1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
grep -m1 "model name" /proc/cpuinfo; nproc
tar -C /tmp -xJf .gpu/dotnet.tar.xz && tar -C /tmp -xzf .gpu/app.tar.gz
TL=$(python3 -c 'import torch,os;print(os.path.join(os.path.dirname(torch.__file__),"lib"))')
python3 - <<PY
import torch, ctypes, os
print("torch", torch.__version__, torch.version.cuda)
try:
    ctypes.CDLL("/tmp/gpupub/runtimes/linux-x64/native/libLibTorchSharp.so", mode=os.RTLD_NOW | os.RTLD_GLOBAL)
    print("LibTorchSharp: all symbols resolve against", torch.__version__)
except OSError as e:
    print("LibTorchSharp RTLD_NOW failed:", e)
PY
export LD_LIBRARY_PATH=$TL:${LD_LIBRARY_PATH:-}
export DOTNET_ROOT=/tmp/dotnetmin PATH=/tmp/dotnetmin:$PATH DOTNET_CLI_TELEMETRY_OPTOUT=1
cd /tmp/gpupub
if [ "${STEPS:-0}" = 1 ]; then
  timeout "${STEPS_TIMEOUT:-240}" dotnet Serving.Bench.dll steps --device cuda --json "$OUT/steps-cuda.json"
  echo "steps rc=$?"
  if [ -n "${HOG:-}" ]; then
    # The same beside HOG busy processes: whether CPU contention slows the host-bound steps as the server's threads might.
    hogs=()
    for _ in $(seq "$HOG"); do (while :; do :; done) & hogs+=($!); done
    timeout "${STEPS_TIMEOUT:-240}" dotnet Serving.Bench.dll steps --device cuda --json "$OUT/steps-cuda-hog$HOG.json"
    echo "steps beside $HOG busy processes rc=$?"
    kill "${hogs[@]}"
  fi
fi
[ "${SERVING:-1}" = 1 ] || exit 0
timeout "${BENCH_TIMEOUT:-420}" dotnet Serving.Bench.dll serving --device cuda --concurrency "${CONC:-32}" --requests "${REQ:-4}" --rounds 1 --json "$OUT/serving-cuda.json"
echo "bench rc=$?"
if [ -n "${MORE:-}" ]; then
  timeout "${MORE_TIMEOUT:-240}" dotnet Serving.Bench.dll serving --device cuda --concurrency "$MORE" --requests "${REQ:-4}" --rounds 1 --json "$OUT/serving-cuda-more.json"
  echo "bench more rc=$?"
fi
