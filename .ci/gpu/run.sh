#!/bin/bash
# One prepared GPU check: CUDA logits vs transformers' golden fixtures, the quick demo on CUDA, transformers loading
# the composed checkpoint it made, and bf16/fp32 benchmarks vs the card's own matmul peak. Results go to $OUT.
cd "$(dirname "$0")"
export HOME=/tmp/gpuhome; mkdir -p $HOME
exec > >(tee -a $OUT/device.log) 2>&1
START=$(date +%s)
el() { echo "[elapsed $(( $(date +%s) - START )) s] $*"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch, transformers; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'transformers', transformers.__version__)"
TL=$(python3 -c "import torch,os;print(os.path.dirname(torch.__file__)+'/lib')")
export FLEXOLMO_LIBTORCH=$TL LD_LIBRARY_PATH=$TL:$LD_LIBRARY_PATH
mkdir -p pub /tmp/brown && tar xJf flexolmo.tar.xz -C pub && tar xJf brown.tar.xz -C /tmp/brown
F=./pub/flexolmo; B=./pub/flexolmo-bench
el "1. golden logits on CUDA"
for fx in olmo2-tiny flexolmo-tiny; do
  timeout 60 $F logits --model fixtures/$fx --input-ids fixtures/$fx/reference.json --out /tmp/$fx.cuda.json --device cuda --dtype float32
done
timeout 60 $F logits --model fixtures/flexolmo-tiny --input-ids fixtures/flexolmo-tiny/reference.json --out /tmp/optout.cuda.json --device cuda --dtype float32 --exclude-experts 3
el "2. quick demo on CUDA"
( time timeout 200 $F demo --quick --work /tmp/gdemo --corpus /tmp/brown --device cuda ) > $OUT/demo-cuda.log 2>&1
grep -E "^\[[0-9]/9\]|claims|^real|error" $OUT/demo-cuda.log; cp /tmp/gdemo/report.md $OUT/demo-cuda-report.md 2>/dev/null
MODEL=/tmp/gdemo/composed
if [ ! -f $MODEL/config.json ]; then
  el "demo on CUDA failed; CPU demo for the HF check"
  timeout 150 $F demo --quick --work /tmp/cdemo --corpus /tmp/brown --device cpu > $OUT/demo-cpu.log 2>&1; MODEL=/tmp/cdemo/composed
fi
el "3. transformers loads our composed checkpoint"
timeout 120 python3 hf_check.py $MODEL ids.json /tmp/hf_composed.json
timeout 60 $F logits --model $MODEL --input-ids ids.json --out /tmp/ours_composed_cuda.json --device cuda --dtype float32
timeout 60 $F logits --model $MODEL --input-ids ids.json --out /tmp/ours_composed_cpu.json --device cpu --dtype float32
python3 compare.py | tee $OUT/compare.txt
el "4. benchmarks"
timeout 100 $B forward --device cuda --dtype bfloat16 float32 --batch 16 --tokens 2048 --json $OUT/bench-forward.json
timeout 70 $B decode --device cuda --dtype bfloat16 --batches 1 16 --json $OUT/bench-decode.json
timeout 90 $B train --device cuda --dtype bfloat16 --micro-batch 16 --steps 6 --json $OUT/bench-train.json
el DONE
