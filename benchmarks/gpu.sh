#!/usr/bin/env bash
# The GPU run: one command, at most about 10 minutes on one CUDA GPU.
#
#   bash benchmarks/gpu.sh [OUT_DIR]        # default OUT_DIR: $OUT, else benchmarks/results/gpu
#
# Writes, into OUT_DIR:
#   machine.json          the card, torch and CUDA versions
#   train-lstm.json       benchmarks/performance.py --parts train on configs/ptb-lstm.yaml (optimised vs plain)
#   train-transformer.json  the same for configs/ptb-transformer.yaml
#   generate-iwnll.json   batched greedy / nucleus generation and the K=500 IW bound (random weights)
#   ptb-run.json          a short real training run (train.max_minutes) and its last validation figures
#                         (its metrics.jsonl beside it; the checkpoints are deleted)
# Each part has its own time limit, so one slow part cannot eat the others' time; a part that fails is
# reported and the others still run (the exit status is then 1).
#
# Data: PTB from $PTB_DIR (default ../shared/data/ptb); without it the synthetic corpus stands in (said in
# machine.json). Python: $PYTHON, else .venv/bin/python, else python3; it must have torch with CUDA and
# textvae's dependencies installed (the machine may have no network). For a dry run of the script itself,
# DEVICE=cpu and EXTRA="section.key=value ..." (overrides for every part, e.g. a tiny model) change both.
set -uo pipefail
cd "$(dirname "$0")/.."

OUT=${1:-${OUT:-benchmarks/results/gpu}}
PTB=${PTB_DIR:-../shared/data/ptb}
if [[ -n "${PYTHON:-}" ]]; then PY=$PYTHON; elif [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi

DEVICE=${DEVICE:-cuda}
read -r -a EXTRA_OVERRIDES <<< "${EXTRA:-}"
if [[ $DEVICE == cuda* ]] && ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 3)" 2>/dev/null; then
    echo "gpu.sh: no CUDA GPU visible to torch in $PY (or torch is not installed); nothing was run" >&2
    exit 2
fi
mkdir -p "$OUT"
if ! "$PY" -c "import textvae" 2>/dev/null; then
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # a checkout without `pip install -e .`
fi

if [[ -f "$PTB/ptb.train.txt" && -f "$PTB/ptb.valid.txt" ]]; then
    DATA=("data.train=$PTB/ptb.train.txt" "data.valid=$PTB/ptb.valid.txt")
    CORPUS="ptb ($PTB)"
else
    DATA=("data.train=synthetic" "data.synthetic_size=50000" "data.valid=null")
    CORPUS="synthetic (no $PTB/ptb.train.txt)"
fi

"$PY" - "$OUT/machine.json" "$CORPUS" <<'EOF'
import json, sys, torch
info = {"torch": torch.__version__, "cuda": torch.version.cuda, "corpus": sys.argv[2]}
if torch.cuda.is_available():
    card = torch.cuda.get_device_properties(0)
    info.update(card=card.name, memory_gib=round(card.total_memory / 2**30, 1), bf16=torch.cuda.is_bf16_supported())
open(sys.argv[1], "w").write(json.dumps(info, indent=2) + "\n")
print("gpu.sh:", info)
EOF

failed=0
part() {  # part NAME SECONDS COMMAND...: run one part under its own time limit
    local name=$1 limit=$2
    shift 2
    echo "gpu.sh: $name (at most ${limit}s)"
    local start=$SECONDS
    timeout --signal=TERM --kill-after=15 "$limit" "$@"
    local rc=$?
    echo "gpu.sh: $name finished with status $rc after $((SECONDS - start))s"
    if [[ $rc -ne 0 ]]; then failed=1; fi
}

PERF=(benchmarks/performance.py --device "$DEVICE" --work-dir "$OUT/work")
DATA+=("${EXTRA_OVERRIDES[@]}")
part train-lstm 150 "$PY" "${PERF[@]}" --config configs/ptb-lstm.yaml --parts train --repeats 3 --steps 20 \
    "${DATA[@]}" --json "$OUT/train-lstm.json"
part train-transformer 120 "$PY" "${PERF[@]}" --config configs/ptb-transformer.yaml --parts train --repeats 3 \
    --steps 20 "${DATA[@]}" --json "$OUT/train-transformer.json"
part generate-iwnll 100 "$PY" "${PERF[@]}" --config configs/ptb-lstm.yaml --parts generate,iwnll --repeats 3 \
    --iw-sentences 32 "${DATA[@]}" --json "$OUT/generate-iwnll.json"
rm -rf "$OUT/ptb-run"
part ptb-run 200 "$PY" -m textvae train configs/ptb-lstm.yaml "${DATA[@]}" "train.device=$DEVICE" train.max_minutes=2.5 \
    train.eval_every=500 train.eval_max_sentences=1000 train.progress=false "train.output_dir=$OUT/ptb-run"
"$PY" - "$OUT/ptb-run" "$OUT/ptb-run.json" <<'EOF'
import json, sys
from pathlib import Path
path = Path(sys.argv[1]) / "metrics.jsonl"
records = [json.loads(line) for line in path.read_text().splitlines() if line] if path.is_file() else []
valid = [r for r in records if r.get("split") == "valid"]
train = [r for r in records if r.get("split") == "train"]
summary = {"steps": max((r["step"] for r in records), default=0), "last_valid": valid[-1] if valid else None,
           "train_tokens_per_sec": train[-1].get("tokens_per_sec") if train else None}
Path(sys.argv[2]).write_text(json.dumps(summary, indent=2) + "\n")
print("gpu.sh: ptb-run", json.dumps(summary)[:300])
EOF
# Only small files come back from a GPU machine: keep the run's records, not its checkpoints.
cp "$OUT/ptb-run/metrics.jsonl" "$OUT/ptb-run-metrics.jsonl" 2>/dev/null
rm -rf "$OUT/work" "$OUT/ptb-run"
exit $failed
