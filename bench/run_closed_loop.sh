#!/usr/bin/env bash
# Closed-loop figures of the issue "Closed loop": success with the embedded brain per split, the value
# of correction on perturbed episodes (with vs without, same seeds), and in-process vs --ros agreement
# on a fixed seed set. Long: ~1 h on 2 busy cores with EPISODES=100 (set EPISODES / CORR_EPISODES lower
# for a quick look). Writes bench/results/closed_loop_*.json and the README's correction table.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
EPISODES="${EPISODES:-100}"
CORR_EPISODES="${CORR_EPISODES:-20}"
AGREE_EPISODES="${AGREE_EPISODES:-12}"
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( (RANDOM % 100) + 101 ))}" ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
cd "$ROOT"
for split in seen unseen; do
  "$RS" eval closed-loop --brain embedded --episodes "$EPISODES" --split "$split" --json \
    > "$OUT/closed_loop_embedded_$split.json"
done
for brain in embedded oracle; do
  "$RS" eval correction --brain "$brain" --episodes "$CORR_EPISODES" --split seen --json \
    --markdown "$OUT/correction_$brain.md" > "$OUT/correction_$brain.json"
done
"$RS" eval closed-loop --brain oracle --episodes "$AGREE_EPISODES" --no-correction --json > "$OUT/agree_inprocess.json"
"$RS" eval closed-loop --brain oracle --episodes "$AGREE_EPISODES" --no-correction --ros --json > "$OUT/agree_ros.json"
"$ROOT/.venv/bin/python" - "$OUT/agree_inprocess.json" "$OUT/agree_ros.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
same = sum(len(set(a["failed_seeds"][f]) ^ set(b["failed_seeds"][f])) == 0 for f in a["failed_seeds"])
diff = {f: sorted(set(a["failed_seeds"][f]) ^ set(b["failed_seeds"][f])) for f in a["failed_seeds"]}
n = a["episodes"]
print(json.dumps({"episodes": n, "in_process_success": a["overall_success"], "ros_success": b["overall_success"],
                  "episodes_that_differ": diff, "agreement": 1 - sum(map(len, diff.values())) / n}, indent=2))
PY
