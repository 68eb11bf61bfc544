#!/usr/bin/env bash
# On the GPU machine, from the repository root with .gpu/ carried (pack-bench.sh): `bench serving --device cuda` on our
# build over the machine's PyTorch libtorch (TorchSharp 0.107's LibTorchSharp resolved every symbol against PyTorch
# 2.11.0+cu130). Figures go to $OUT. CONC (32), REQ (4), BENCH_TIMEOUT (420 s); MORE=1,8,64 runs those levels after.
# STEPS=1 first runs `bench steps --device cuda` (decode step vs rows, engine only; STEPS_TIMEOUT, 240 s; ROWS, the row
# counts), and with HOG=N again beside N busy processes; SERVING=0 skips the serving bench. Where pack-bench.sh packed a
# before build (.gpu/before.tar.gz), the steps run PAIRS (2) times each way, after and before taking turns, and with
# SERVING_BEFORE=1 the serving bench runs on the before build too, right after this build's.
# It also asks the machine's PyTorch whether CUDA has an int8 weight-only matmul (issue 32's question), and on a host with
# AMX-INT8 runs `bench int8-kernel` with and without it.
set -uo pipefail
exec > >(tee -a "$OUT/log") 2>&1
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader
grep -m1 "model name" /proc/cpuinfo; nproc
# The host's AMX and VNNI flags: an AMX host can also prove the CPU kernels that need it (AMX int8, issue 32).
echo "cpu flags: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(amx_|avx512_vnni|avx512_bf16)' | tr '\n' ' ')"
tar -C /tmp -xJf .gpu/dotnet.tar.xz && tar -C /tmp -xzf .gpu/app.tar.gz
[ -f .gpu/before.tar.gz ] && tar -C /tmp -xzf .gpu/before.tar.gz
TL=$(python3 -c 'import torch,os;print(os.path.join(os.path.dirname(torch.__file__),"lib"))')
python3 - <<PY
import torch, ctypes, os
print("torch", torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))
try:
    ctypes.CDLL("/tmp/gpupub/runtimes/linux-x64/native/libLibTorchSharp.so", mode=os.RTLD_NOW | os.RTLD_GLOBAL)
    print("LibTorchSharp: all symbols resolve against", torch.__version__)
except OSError as e:
    print("LibTorchSharp RTLD_NOW failed:", e)
# int8 weight-only matmul on CUDA: x [M, K] bf16, w [N, K] int8, per-channel scales [N].
x = torch.randn(8, 4096, dtype=torch.bfloat16, device="cuda")
w = torch.randint(-127, 128, (4096, 4096), dtype=torch.int8, device="cuda")
s = torch.rand(4096, dtype=torch.bfloat16, device="cuda")
for name, call in [("torch._weight_int8pack_mm", lambda: torch._weight_int8pack_mm(x, w, s)),
                   ("torch._int_mm (int8 x int8, W8A8)", lambda: torch._int_mm(torch.randint(-127, 128, (32, 4096), dtype=torch.int8, device="cuda"), w.t()))]:
    try:
        call(); torch.cuda.synchronize(); print("int8 probe:", name, "runs on CUDA")
    except Exception as e:
        print("int8 probe:", name, "fails on CUDA:", str(e).splitlines()[0][:200])
PY
export LD_LIBRARY_PATH=$TL:${LD_LIBRARY_PATH:-}
export DOTNET_ROOT=/tmp/dotnetmin PATH=/tmp/dotnetmin:$PATH DOTNET_CLI_TELEMETRY_OPTOUT=1
cd /tmp/gpupub
if grep -qw amx_int8 /proc/cpuinfo; then
  # An AMX host: the int8 kernel bench with AMX-INT8 (its self-check's outcome is the int8_kernel context) and without.
  SERVING_INT8_AMX=0 timeout 150 dotnet Serving.Bench.dll int8-kernel --iterations 10 --json "$OUT/int8-kernel-vnni.json"; echo "int8-kernel vnni rc=$?"
  timeout 150 dotnet Serving.Bench.dll int8-kernel --iterations 10 --json "$OUT/int8-kernel-amx.json"; echo "int8-kernel amx rc=$?"
  # Issue 32's engine-step ratios (int8 / bf16, step / read time at B = 1 and 8) with the AMX int8 kernel and without.
  SERVING_INT8_AMX=0 timeout 150 dotnet Serving.Bench.dll int8 --steps 24 --json "$OUT/int8-steps-vnni.json"; echo "int8 steps vnni rc=$?"
  timeout 150 dotnet Serving.Bench.dll int8 --steps 24 --json "$OUT/int8-steps-amx.json"; echo "int8 steps amx rc=$?"
fi
rows=()
[ -n "${ROWS:-}" ] && rows=(--rows "$ROWS")
steps() { # $1: build folder, $2: output name, then extra arguments
  local dir=$1 name=$2; shift 2
  (cd "/tmp/$dir" && timeout "${STEPS_TIMEOUT:-240}" dotnet Serving.Bench.dll steps --device cuda "$@" --json "$OUT/$name.json")
  echo "steps $name rc=$?"
}
if [ "${STEPS:-0}" = 1 ]; then
  if [ -d /tmp/beforepub ]; then
    for pair in $(seq "${PAIRS:-2}"); do
      steps gpupub "steps-cuda-after-$pair" "${rows[@]}"
      steps beforepub "steps-cuda-before-$pair"
    done
  else
    steps gpupub steps-cuda "${rows[@]}"
  fi
  if [ -n "${HOG:-}" ]; then
    # The same beside HOG busy processes: whether CPU contention slows the host-bound steps as the server's threads might.
    hogs=()
    for _ in $(seq "$HOG"); do (while :; do :; done) & hogs+=($!); done
    steps gpupub "steps-cuda-hog$HOG" "${rows[@]}"
    kill "${hogs[@]}"
  fi
fi
[ "${SERVING:-1}" = 1 ] || exit 0
timeout "${BENCH_TIMEOUT:-420}" dotnet Serving.Bench.dll serving --device cuda --concurrency "${CONC:-32}" --requests "${REQ:-4}" --rounds 1 --json "$OUT/serving-cuda.json"
echo "bench rc=$?"
if [ "${SERVING_BEFORE:-0}" = 1 ] && [ -d /tmp/beforepub ]; then
  (cd /tmp/beforepub && timeout "${BENCH_TIMEOUT:-420}" dotnet Serving.Bench.dll serving --device cuda --concurrency "${CONC:-32}" --requests "${REQ:-4}" --rounds 1 --json "$OUT/serving-cuda-before.json")
  echo "bench before rc=$?"
fi
if [ -n "${MORE:-}" ]; then
  timeout "${MORE_TIMEOUT:-240}" dotnet Serving.Bench.dll serving --device cuda --concurrency "$MORE" --requests "${REQ:-4}" --rounds 1 --json "$OUT/serving-cuda-more.json"
  echo "bench more rc=$?"
fi
