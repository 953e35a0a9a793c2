#!/usr/bin/env bash
# One GPU check: on a lent GPU machine (H100/H200 with torch, timm, transformers; no Ray and no downloads: carry the
# wheels of open_clip, diffusers and datagen's shard dependencies), measure in one run of at most 9 minutes and print
# one table:
#   env             date, nvidia-smi name / memory, torch / CUDA and library versions          (bench/gpu_env.py)
#   siglip          SigLIP SO400M/14 embedding alone, bf16, batch 256 at 384 px: images/s, MFU (bench/gpu_siglip.py)
#   siglip_operator the siglip_features operator end to end on images: images/s   (bench/gpu_siglip_operator.py)
#   train           the ACE 0.6B DiT's training samples/s and MFU, blocks compiled, flash path, from precomputed
#                   latents and with the VAE + T5-XXL encoding online       (bench/bench_train_gpu.py via gpu_train.py)
#   latents         the latents job end to end: images/s per GPU                              (bench/gpu_latents.py)
#   inpaint         the synthesized edits' SDXL inpainting at 1024 px, 30 steps: s/edit at the best batch (gpu_inpaint.py)
#   kmeans          (only with --with kmeans) spherical K-means on 1M x 1152, faiss or a torch stand-in (gpu_kmeans.py)
# Each part runs in its own process under `timeout`; a part that fails or runs out of time is reported as such
# and the others still run. With $OUT set, writes $OUT/gpu_check.json, $OUT/gpu_check_logs/ and the dated results
# file $OUT/gpu-DATE.json (in GPU mode also bench/results/gpu-DATE.json, the file to commit; keys in gpu_report.py).
#
#   bash bench/gpu_check.sh                 # on the GPU machine, from the repository root (device tool: timeout_s ~560)
#   bash bench/gpu_check.sh --cpu-smoke     # anywhere: tiny sizes on CPU, checks every code path (tests/test_gpu_check.py)
#   options: --skip PART[,PART]   --with kmeans   --budget SECONDS (all parts together, default 540)
#            --limit PART=SECONDS[,...] (one part's time limit; defaults env 20, siglip 60, siglip_operator 90,
#            train 150, latents 80, inpaint 150; --cpu-smoke triples them and allows 1500 s in all)
#   env: PYTHON (interpreter; default: the first of .venv/bin/python, python3, python that imports torch);
#        COMMIT (the commit measured, where the copy has no .git; default: git rev-parse HEAD)
set -u

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2
MODE=gpu
SKIP=""
WITH=""
LIMITS=""
BUDGET=540
BUDGET_SET=0
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu-smoke) MODE=smoke ;;
    --skip) SKIP="${2:-}"; shift ;;
    --skip=*) SKIP="${1#*=}" ;;
    --with) WITH="${2:-}"; shift ;;
    --with=*) WITH="${1#*=}" ;;
    --limit) LIMITS="$LIMITS,${2:-}"; shift ;;
    --limit=*) LIMITS="$LIMITS,${1#*=}" ;;
    --budget) BUDGET="${2:-540}"; BUDGET_SET=1; shift ;;
    --budget=*) BUDGET="${1#*=}"; BUDGET_SET=1 ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "gpu_check: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

PY="${PYTHON:-}"
if [ -z "$PY" ]; then  # the first interpreter that imports torch
  for cand in .venv/bin/python python3 python; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c "import torch" >/dev/null 2>&1; then PY=$cand; break; fi
  done
  PY="${PY:-python3}"
fi
SMOKE=()
SCALE=1
if [ "$MODE" = smoke ]; then
  SMOKE=(--cpu-smoke)
  SCALE=3  # tiny sizes, but a shared 2-core machine may take a minute just to import torch and timm
  [ "$BUDGET_SET" = 1 ] || BUDGET=1500
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
: > "$WORK/status.tsv"
START=$(date +%s)

# run_part NAME LIMIT_S: bench/gpu_NAME.py under `timeout` (the whole process group: timeout signals it), within
# what is left of the budget (15 s kept for the report)
run_part() {
  local name=$1 limit=$2 t0 rc dt st left over
  limit=$(( limit * SCALE ))
  over=$(tr ',' '\n' <<< "$LIMITS" | sed -n "s/^$name=\([0-9][0-9]*\)$/\1/p" | tail -n 1)
  [ -n "$over" ] && limit=$over
  if [[ ",$SKIP," == *",$name,"* ]]; then
    printf '%s\tskipped\t0\t0\t0\n' "$name" >> "$WORK/status.tsv"; echo "[gpu_check] $name: skipped" >&2; return
  fi
  left=$(( BUDGET - ($(date +%s) - START) - 15 ))
  if (( left < 20 )); then
    printf '%s\tno-time\t0\t0\t0\n' "$name" >> "$WORK/status.tsv"; echo "[gpu_check] $name: no time left" >&2; return
  fi
  (( limit > left )) && limit=$left
  echo "[gpu_check] $name: running (at most ${limit} s)" >&2
  t0=$(date +%s)
  timeout -k 10 "$limit" "$PY" "bench/gpu_$name.py" --json "$WORK/$name.json" ${SMOKE[@]+"${SMOKE[@]}"} > "$WORK/$name.log" 2>&1
  rc=$?
  dt=$(( $(date +%s) - t0 ))
  if (( rc == 0 )) && [ -s "$WORK/$name.json" ]; then st=ok
  elif (( rc == 124 || rc == 137 )); then st=timeout
  else st=failed; fi
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$st" "$rc" "$dt" "$limit" >> "$WORK/status.tsv"
  echo "[gpu_check] $name: $st in ${dt} s (exit $rc)" >&2
  if [ "$st" != ok ]; then tail -n 5 "$WORK/$name.log" | sed "s/^/[gpu_check]   $name| /" >&2; fi
}

echo "[gpu_check] mode $MODE, python $PY, budget ${BUDGET} s, repo $ROOT" >&2
run_part env 20
run_part siglip 60
run_part siglip_operator 90
run_part train 150
run_part latents 80
run_part inpaint 150
[[ ",$WITH," == *",kmeans,"* ]] && run_part kmeans 180

COMMIT="${COMMIT:-$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)}"
OUT_ARGS=(--commit "$COMMIT")
[ -n "${OUT:-}" ] && OUT_ARGS+=(--out "$OUT" --results "$OUT")
[ "$MODE" = gpu ] && OUT_ARGS+=(--results "$ROOT/bench/results")
"$PY" bench/gpu_report.py "$WORK" --mode "$MODE" --total-s "$(( $(date +%s) - START ))" ${OUT_ARGS[@]+"${OUT_ARGS[@]}"}
rc=$?
if (( rc > 1 )); then  # 1: the table is printed and some part failed or timed out
  echo "[gpu_check] the report failed (exit $rc); raw part status:" >&2
  cat "$WORK/status.tsv" >&2
fi
exit "$rc"
