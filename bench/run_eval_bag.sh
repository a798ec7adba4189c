#!/usr/bin/env bash
# Rosbag replay evaluation benchmark, one run on this machine: offline replay speed of the shipped
# cerebellum (parallel pass and node-like recurrent stepping), the metric's floor (the expert's own
# recorded commands) and truth (those commands offset by a known 2 cm / 5 deg), and the LeRobot export.
# Usage: bash bench/run_eval_bag.sh [BAG_DIR] [N]   (searched two levels deep, first N bags, default 40)
# Default BAG_DIR: data/eval_heldout, episodes the shipped cerebellum never trained on (seeds 300000+, 20 seen
# and 20 unseen, a quarter perturbed), collected here first when missing (~40 s). Writes bench/results/eval_bag_*.json.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
DATA="${1:-$ROOT/data/eval_heldout}"
N="${2:-40}"
if [ "$#" -eq 0 ]; then
  for split in seen unseen; do  # resumable: episodes already there are kept
    "$RS" sim collect --episodes 20 --split "$split" --seed0 300000 --out "$DATA/$split" \
      --perturb grasp_offset nudge slip wrong_keypoint --perturb-fraction 0.25
  done
fi
mapfile -t BAGS < <(find "$DATA" -mindepth 1 -maxdepth 2 -type d -name 'ep_*' | sort | head -n "$N")
[ "${#BAGS[@]}" -gt 0 ] || { echo "no ep_* bags under $DATA (make some: robo-stack sim collect)" >&2; exit 1; }
echo "${#BAGS[@]} bags from $DATA" >&2
run() { local name="$1"; shift; "$RS" eval bag "${BAGS[@]}" --json "$@" > "$OUT/eval_bag_$name.json"; }
run cerebellum_parallel --model cerebellum --mode parallel
run cerebellum_recurrent --model cerebellum --mode recurrent
run floor_recorded --model recorded
run truth_offset --model recorded --offset-cm 1.2 -1.6 0 --offset-deg 5
EXPORT="$(mktemp -d)"
"$RS" export lerobot "${BAGS[@]}" "$EXPORT/ds" --json > "$OUT/eval_bag_export_lerobot.json"
rm -rf "$EXPORT"
"$ROOT/.venv/bin/python" - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
keys = ("bags_scored", "bags_failed", "recorded_duration_s", "wall_s", "realtime_factor", "model_realtime_factor",
        "translation_error_cm_median", "rotation_error_deg_median", "gripper_agreement", "latency_ms_p50",
        "latency_ms_p95")
for name in ("cerebellum_parallel", "cerebellum_recurrent", "floor_recorded", "truth_offset"):
    r = json.loads((out / f"eval_bag_{name}.json").read_text())
    print(f"{name:22s} " + " ".join(f"{k}={r.get(k)}" for k in keys))
    if name.startswith("cerebellum"):
        print(" " * 23 + "failure_detection=" + json.dumps(r["failure_detection"]))
e = json.loads((out / "eval_bag_export_lerobot.json").read_text())
print(f"export_lerobot          episodes={e['episodes']} frames={e['frames']} fps={e['fps']} "
      f"MB={e['bytes'] / 1e6:.2f} seconds={e['seconds']}")
PY
