#!/usr/bin/env bash
# The GPU check of packed scoring, in one script of at most 8 minutes on one GPU, writing one JSON.
#
#   benchmarks/device_check.sh --prepare           # here, once: copy the inputs into .device-check/
#   benchmarks/device_check.sh [OUT.json]          # on the GPU box (default: $OUT/device_check.json)
#   benchmarks/device_check.sh --dry-run [OUT.json]    # the same steps on the CPU, small sizes (DEVICE=cpu too)
#
# The GPU box has no network and no weights: models are random weights of SmolLM2-135M's and
# Qwen2.5-1.5B's shapes, built from the config and tokenizer that --prepare copies (with the GSM8K
# file the candidates come from) into .device-check/ (4 MB, git-ignored: name it in the run's carry).
# Steps, each under its own time limit (a step that fails or overruns is reported, the rest still run):
#   1. imports: what is there and what is missing (torch, transformers, … are required; triton, vllm optional)
#   2. exactness: packed == naive in float32 under the flex, batched and blocks attentions, both shapes
#   3. speed: benchmarks/bench_scoring.py, packed (flex, then batched) against plain forwards, bf16
#   4. vLLM (only if importable): benchmarks/bench_fused_j.py, a /generate-sized generation and fused J,
#      and bench_engine_scoring.py (scorer=engine against the torch scorer on sampled candidates)
# Targets on a GPU: packed ≤ 1.3× a batched plain forward, fused J ≤ 0.3× a plain forward's time.
set -uo pipefail
cd "$(dirname "$0")/.."

DRY=0
PREPARE=0
OUTFILE=""
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY=1 ;;
    --prepare) PREPARE=1 ;;
    -h | --help) sed -n '2,16p' "$0"; exit 0 ;;
    -*) echo "unknown option $arg (see --help)" >&2; exit 2 ;;
    *) OUTFILE=$arg ;;
  esac
done
DEVICE=${DEVICE:-cuda}
[ "$DRY" = 1 ] && DEVICE=cpu
PY=${PYTHON:-python3}
INPUTS=${L2T_DEVICE_INPUTS:-.device-check}
SHAPE=$INPUTS/smollm2-135m
WORK=$(mktemp -d)
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 L2T_DATA_DIR=$INPUTS/data
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONWARNINGS=ignore

# ---- inputs: copied here from the local model cache and shared data (--prepare), read there ----------
prepare() {
  local model data=../shared/data/gsm8k_test.jsonl
  model=$(ls -d "$HOME"/.cache/l2t/models/SmolLM2-135M* 2>/dev/null | head -1)
  if [ -z "$model" ] || [ ! -f "$data" ]; then
    echo "cannot prepare $INPUTS: need the SmolLM2 cache ($HOME/.cache/l2t/models, made by its first load) and $data" >&2
    return 4
  fi
  mkdir -p "$SHAPE" "$INPUTS/data"
  for f in config.json tokenizer.json tokenizer_config.json chat_template.jinja generation_config.json; do
    [ -f "$model/$f" ] && cp "$model/$f" "$SHAPE/"
  done
  cp "$data" "$INPUTS/data/"
  local exclude
  exclude=$(git rev-parse --git-path info/exclude)
  mkdir -p "$(dirname "$exclude")"
  grep -qx "/$INPUTS/" "$exclude" 2>/dev/null || echo "/$INPUTS/" >>"$exclude"
  echo "prepared $INPUTS ($(du -sh "$INPUTS" | cut -f1)): config and tokenizer of SmolLM2-135M, GSM8K test"
}
if [ "$PREPARE" = 1 ]; then prepare; exit $?; fi
if [ ! -f "$SHAPE/config.json" ] || [ ! -f "$INPUTS/data/gsm8k_test.jsonl" ]; then
  echo "no inputs in $INPUTS: preparing them from this machine's caches" >&2
  prepare || { echo "run 'benchmarks/device_check.sh --prepare' where the model cache is, and carry $INPUTS" >&2; exit 4; }
fi

# ---- 1. imports ---------------------------------------------------------------------------------
echo "== 1. imports ($PY)"
"$PY" - "$WORK/imports.json" <<'EOF' || exit 2
import importlib, json, platform, sys
required = ["torch", "transformers", "tokenizers", "safetensors", "numpy", "yaml", "jinja2"]
optional = ["triton", "vllm", "math_verify", "pytest"]
found = {}
for name in required + optional:
    try:
        found[name] = getattr(importlib.import_module(name), "__version__", "?")
    except Exception as exc:  # a broken install counts as missing
        found[name] = None
        print(f"  {name:12} MISSING ({'required' if name in required else 'optional'}): {type(exc).__name__}: {exc}")
    else:
        print(f"  {name:12} {found[name]}")
missing = [n for n in required if found[n] is None]
info = {"python": platform.python_version(), "versions": found, "missing_required": missing}
try:
    import torch
    info["cuda"] = torch.cuda.is_available()
    info["gpu"] = torch.cuda.get_device_name(0) if info["cuda"] else None
    from torch.nn.attention.flex_attention import flex_attention  # noqa: F401
    info["flex_attention"] = True
except Exception as exc:
    info.setdefault("cuda", False)
    info["flex_attention"] = f"{type(exc).__name__}: {exc}"
json.dump(info, open(sys.argv[1], "w"))
print(f"  cuda: {info['cuda']} {info.get('gpu') or ''}; flex_attention: {info['flex_attention']}")
if missing:
    sys.exit(f"missing required packages: {', '.join(missing)} (carry them as wheels: see the device notes)")
EOF
CUDA=$("$PY" -c "import json,sys; print(int(json.load(open(sys.argv[1]))['cuda']))" "$WORK/imports.json")
if [ "$DEVICE" = cuda ] && [ "$CUDA" != 1 ]; then
  echo "no CUDA device here: the device check needs a GPU. For the same steps on the CPU: $0 --dry-run" >&2
  exit 3
fi
if [ -z "$OUTFILE" ]; then
  OUTFILE=${OUT:-out}/device_check.json
fi
mkdir -p "$(dirname "$OUTFILE")"

# ---- sizes: full on the GPU; on the CPU, 2 decoder layers, 2–3 candidates, one round ----------------
if [ "$DEVICE" = cuda ]; then
  LAYERS=() CANDIDATES=4 BENCH_CANDIDATES=8 DTYPE=bfloat16 REPEATS=3 BUDGET=45 LIMIT_EXACT=80 LIMIT_BENCH=110 LIMIT_VLLM=90 LIMIT_ENGINE=90
else
  LAYERS=(--layers 2) CANDIDATES=2 BENCH_CANDIDATES=2 DTYPE=float32 REPEATS=1 BUDGET=20 LIMIT_EXACT=300 LIMIT_BENCH=300 LIMIT_VLLM=300 LIMIT_ENGINE=300
fi

# step NAME LIMIT_S COMMAND…: its stdout (a JSON document) to WORK/NAME.json, its rc and seconds beside it
step() {
  local name=$1 limit=$2 started rc
  shift 2
  echo "== $name (at most ${limit}s)"
  started=$(date +%s%N)
  timeout --kill-after=10 "$limit" "$@" >"$WORK/$name.json" 2>"$WORK/$name.err"
  rc=$?
  echo "$rc $((($(date +%s%N) - started) / 1000000))" >"$WORK/$name.meta"  # rc, milliseconds
  [ "$rc" = 0 ] && echo "   ok" || { echo "   rc $rc; the end of its stderr:"; tail -5 "$WORK/$name.err" | sed 's/^/   /'; }
}

# ---- 2. exactness ---------------------------------------------------------------------------------
step exact_smollm2_135m "$LIMIT_EXACT" "$PY" benchmarks/packed_exactness.py --shape "$SHAPE" "${LAYERS[@]}" \
  --device "$DEVICE" --candidates "$CANDIDATES" --json
step exact_qwen2_5_1_5b "$LIMIT_EXACT" "$PY" benchmarks/packed_exactness.py --shape qwen2.5-1.5b \
  --tokenizer "$SHAPE" "${LAYERS[@]}" --device "$DEVICE" --candidates "$((CANDIDATES < 3 ? 1 : CANDIDATES))" --json

# ---- 3. speed -------------------------------------------------------------------------------------
BENCH=(--device "$DEVICE" --dtype "$DTYPE" --attention flex,batched --candidates "$BENCH_CANDIDATES" --repeats "$REPEATS"
  --budget-s "$BUDGET" --json)
step bench_smollm2_135m "$LIMIT_BENCH" "$PY" benchmarks/bench_scoring.py --model "$SHAPE" --random-weights \
  "${LAYERS[@]}" "${BENCH[@]}"
step bench_qwen2_5_1_5b "$LIMIT_BENCH" "$PY" benchmarks/bench_scoring.py --model "$SHAPE" \
  --random-config qwen2.5-1.5b "${LAYERS[@]}" "${BENCH[@]}"

# ---- 4. vLLM: a generation and fused J --------------------------------------------------------------
if "$PY" -c "import vllm" 2>/dev/null; then
  "$PY" benchmarks/random_model.py --shape "$SHAPE" --out "$WORK/random-smollm2" "${LAYERS[@]}" >/dev/null 2>&1
  step fused_j "$LIMIT_VLLM" "$PY" benchmarks/bench_fused_j.py --model "$WORK/random-smollm2" --device "$DEVICE" \
    --generate 8 --json
  step engine_scoring "$LIMIT_ENGINE" "$PY" benchmarks/bench_engine_scoring.py --model "$WORK/random-smollm2" \
    --device "$DEVICE" --questions-from arithmetic --questions 4 --n 4 --max-tokens 64 --json
else
  echo "== fused_j: skipped (vllm is not importable)"
fi

# ---- one JSON -------------------------------------------------------------------------------------
"$PY" - "$WORK" "$OUTFILE" "$DEVICE" "$DRY" <<'EOF'
import datetime, json, pathlib, sys
work, outfile, device, dry = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4] == "1"
report = {
    "date": datetime.datetime.now().isoformat(timespec="seconds"),
    "device": device,
    "dry_run": dry,
    "imports": json.loads((work / "imports.json").read_text()),
    "steps": {},
}
for meta in sorted(work.glob("*.meta")):
    name = meta.stem
    rc, milliseconds = meta.read_text().split()
    entry = {"rc": int(rc), "seconds": round(int(milliseconds) / 1000, 1)}
    try:  # the document, or its last line (vLLM logs to stdout before the script prints it)
        text = (work / f"{name}.json").read_text().strip()
        entry["result"] = json.loads(text if text.startswith("{") else text.splitlines()[-1])
    except (ValueError, IndexError):
        entry["stdout_tail"] = (work / f"{name}.json").read_text()[-2000:]
    if int(rc):
        entry["stderr_tail"] = (work / f"{name}.err").read_text()[-3000:]
    report["steps"][name] = entry
if "fused_j" not in report["steps"]:
    report["steps"]["fused_j"] = {"skipped": "vllm is not importable"}
results = {name: s.get("result") or {} for name, s in report["steps"].items()}
exact = {n: r.get("all_within_rtol") for n, r in results.items() if n.startswith("exact_")}
speed = {
    n.removeprefix("bench_"): r.get("packed_over_batched_by_attention") for n, r in results.items() if n.startswith("bench_")
}
fused = results.get("fused_j", {}).get("fused_over_plain_time")
report["summary"] = {
    "packed_equals_naive": exact,
    "packed_over_batched_plain": speed,
    "fused_j_over_plain_time": fused,
    "engine_scoring_over_torch_tokens": results.get("engine_scoring", {}).get("engine_over_torch_tokens"),
    "targets": {"packed_over_batched_plain_max": 1.3, "fused_j_over_plain_time_max": 0.3},
    "met": None if dry else {
        "exact": all(v is True for v in exact.values()),
        "packed_flex": {n: (r or {}).get("flex", 99) <= 1.3 for n, r in speed.items()},
        "fused_j": None if fused is None else fused <= 0.3,
    },
    "note": "CPU dry run: small sizes, not GPU figures" if dry else "",
}
pathlib.Path(outfile).write_text(json.dumps(report, indent=2))
print(json.dumps(report["summary"], indent=2))
print(f"wrote {outfile}")
EOF
rm -rf "$WORK"
