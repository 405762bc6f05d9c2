#!/usr/bin/env bash
# Predicted vs measured peak memory of one training step on the CPU (docs/memory.md):
# f32/bf16 × checkpointing off/on × DPO/KTO, micro-batch 4, seq 256, fused head, cached reference log-probs.
#   benchmarks/Engine.Benchmarks/Memory/measure-table.sh MODEL [more engine plan options]
# MODEL: a preset (bench-25m) or a model folder (../shared/models/stories260K/hf). Prints one Markdown row per run.
set -euo pipefail
cd "$(dirname "$0")/../../.."
model=$1; shift
echo "| model | method | precision | checkpointing | predicted | measured | ratio | peak moment |"
echo "| --- | --- | --- | --- | ---: | ---: | ---: | --- |"
for method in dpo kto; do
  for precision in f32 bf16; do
    for ckpt in off on; do
      json=$(./engine plan --model "$model" --method $method --seq-len 256 --vram 64GiB --device cpu --micro-batch 4 \
        --precision $precision --checkpointing $ckpt --logprob fused --ref-mode cached --optimizer-state-dtype f32 --measure --json "$@")
      python3 - "$json" "$model" $method $precision $ckpt <<'PY'
import json, sys
j = json.loads(sys.argv[1]); m = j["measured"]
mib = lambda b: f"{b / 2**20:.1f} MiB"
print(f"| {sys.argv[2].rstrip('/').split('/')[-1] if '/' in sys.argv[2] else sys.argv[2]} | {sys.argv[3]} | {sys.argv[4]} | {sys.argv[5]} | "
      f"{mib(m['predicted_peak_bytes'])} | {mib(m['measured_peak_bytes'])} | {m['ratio']:.3f} | {j['peak_point']} |")
PY
    done
  done
done
