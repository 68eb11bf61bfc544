#!/usr/bin/env bash
# Packs Serving.Bench and the .NET runtime for a GPU machine that has PyTorch but no .NET SDK and no network (the lent
# device machine): .gpu/dotnet.tar.xz (the runtime, ~35 MB) and .gpu/app.tar.gz (the bench, ~5 MB, without the CPU
# libtorch: run-serving-bench.sh loads the machine's own PyTorch libtorch). Run from the repository root.
set -euo pipefail
out=.gpu
work=$(mktemp -d)
dotnet publish bench/Serving.Bench -c Release -o "$work/gpupub" >/dev/null
(
  cd "$work/gpupub"
  rm -f ./*.pdb ./*.xml
  rm -rf runtimes/osx* runtimes/win*
  find runtimes/linux-x64/native -type f ! -name libLibTorchSharp.so -delete
)
root=$(dirname "$(readlink -f "$(command -v dotnet)")")
mkdir -p "$work/dotnetmin/host" "$work/dotnetmin/shared" "$out"
cp -a "$root/dotnet" "$work/dotnetmin/"
cp -a "$root/host/fxr" "$work/dotnetmin/host/"
cp -a "$root/shared/Microsoft.NETCore.App" "$root/shared/Microsoft.AspNetCore.App" "$work/dotnetmin/shared/"
tar -C "$work" -cJf "$out/dotnet.tar.xz" dotnetmin
tar -C "$work" -czf "$out/app.tar.gz" gpupub
cp tools/device/run-serving-bench.sh "$out/run.sh"
rm -rf "$work"
ls -la "$out"
