#!/usr/bin/env bash
# Packs Serving.Bench and the .NET runtime for a GPU machine that has PyTorch but no .NET SDK and no network (the lent
# device machine): .gpu/dotnet.tar.xz (the runtime, ~35 MB) and .gpu/app.tar.gz (the bench, ~5 MB, without the CPU
# libtorch: run-serving-bench.sh loads the machine's own PyTorch libtorch). Run from the repository root.
# `pack-bench.sh COMMIT` also packs the bench as built at COMMIT (.gpu/before.tar.gz), so that one device run measures
# the same steps before and after a change on the same machine.
set -euo pipefail
out=.gpu
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Publishes the bench from the source folder $1 into $work/$2, keeping only what runs on Linux over another libtorch.
publish() {
  dotnet publish "$1/bench/Serving.Bench" -c Release -o "$work/$2" >/dev/null
  (
    cd "$work/$2"
    rm -f ./*.pdb ./*.xml
    rm -rf runtimes/osx* runtimes/win*
    find runtimes/linux-x64/native -type f ! -name libLibTorchSharp.so -delete
  )
}

mkdir -p "$out"
publish . gpupub
tar -C "$work" -czf "$out/app.tar.gz" gpupub
if [ -n "${1:-}" ]; then
  git worktree add --detach "$work/before-src" "$1" >/dev/null
  publish "$work/before-src" beforepub
  git worktree remove --force "$work/before-src"
  tar -C "$work" -czf "$out/before.tar.gz" beforepub
else
  rm -f "$out/before.tar.gz"
fi
root=$(dirname "$(readlink -f "$(command -v dotnet)")")
mkdir -p "$work/dotnetmin/host" "$work/dotnetmin/shared"
cp -a "$root/dotnet" "$work/dotnetmin/"
cp -a "$root/host/fxr" "$work/dotnetmin/host/"
cp -a "$root/shared/Microsoft.NETCore.App" "$root/shared/Microsoft.AspNetCore.App" "$work/dotnetmin/shared/"
tar -C "$work" -cJf "$out/dotnet.tar.xz" dotnetmin
cp tools/device/run-serving-bench.sh "$out/run.sh"
ls -la "$out"
