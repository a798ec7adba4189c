#!/usr/bin/env bash
# The demo (`make demo`'s scripts/demo.sh) REPEAT (10) times in a row on the default scene and on one scene of each other family,
# then a table of the outcomes (success, corrections, early releases, time to success) from each run's
# summary.json. Writes bench/results/demo_repeat.{json,md}. Run alone: the stack is timing-sensitive.
#   bash bench/run_demo_repeat.sh              # 4 scenes x 10 runs (~25 min on 2 cores)
#   REPEAT=3 SCENES="100001:pick_place" bash bench/run_demo_repeat.sh
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
REPEAT="${REPEAT:-10}"
SCENES="${SCENES:-100001:pick_place 100002:stack 100003:rearrange 100004:push}"
RUNS="$ROOT/runs/demo-repeat/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$RUNS"
cd "$ROOT"
for scene in $SCENES; do
  seed="${scene%%:*}" family="${scene##*:}"
  for i in $(seq 1 "$REPEAT"); do
    log="$RUNS/$family-$seed-$i.log"
    echo "[demo-repeat] $family seed $seed run $i/$REPEAT"
    before="$(ls -1d "$ROOT"/runs/demo/*/ 2>/dev/null | sort | tail -n 1)"
    SEED="$seed" FAMILY="$family" bash "$ROOT/scripts/demo.sh" >"$log" 2>&1  # what `make demo` runs after set-up
    after="$(ls -1d "$ROOT"/runs/demo/*/ 2>/dev/null | sort | tail -n 1)"
    if [[ -n "$after" && "$after" != "$before" ]]; then
      ln -sfn "$after" "$RUNS/$family-$seed-$i"
    fi
  done
done
"$ROOT/.venv/bin/python" "$ROOT/bench/demo_repeat_table.py" "$RUNS" --json "$OUT/demo_repeat.json" \
  --markdown "$OUT/demo_repeat.md"
