#!/usr/bin/env bash
# Cerebellum closed-loop figures with the expert's (oracle) plans: success per family on EPISODES clean
# episodes of each split, and failure detection on DETECT_EPISODES clean episodes plus DETECT_EPISODES per
# perturbation mode (seen split). ~20 min on 2 quiet cores with the defaults (the 20 Hz checkpoint). Writes
# bench/results/closed_loop_oracle{TAG}_*.json. CHECKPOINT=<folder> evaluates another cerebellum checkpoint
# (e.g. CHECKPOINT=models/cerebellum_200hz TAG=_200hz); DETECT_EPISODES=0 skips the detection run.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
EPISODES="${EPISODES:-100}"
DETECT_EPISODES="${DETECT_EPISODES:-50}"
CHECKPOINT="${CHECKPOINT:-$ROOT/models/cerebellum}"
TAG="${TAG:-}"
cd "$ROOT"
names=(seen unseen)
for split in seen unseen; do
  "$RS" eval closed-loop --brain oracle --checkpoint "$CHECKPOINT" --episodes "$EPISODES" --split "$split" --json \
    > "$OUT/closed_loop_oracle${TAG}_$split.json"
done
if [ "$DETECT_EPISODES" -gt 0 ]; then
  "$RS" eval closed-loop --brain oracle --checkpoint "$CHECKPOINT" --episodes "$DETECT_EPISODES" --split seen \
    --perturb grasp_offset nudge slip wrong_keypoint --json > "$OUT/closed_loop_oracle${TAG}_detection.json"
  names+=(detection)
fi
"$ROOT/.venv/bin/python" - "$OUT" "$TAG" "${names[@]}" <<'PY'
import json, sys
from pathlib import Path
out, tag = Path(sys.argv[1]), sys.argv[2]
for name in sys.argv[3:]:
    r = json.loads((out / f"closed_loop_oracle{tag}_{name}.json").read_text())
    fd = r["failure_detection"]
    print(f"{name:9s} success {r['overall_success']:.2f} {json.dumps(r['success_rate'])} "
          f"detection precision {fd['precision']} (strict {fd['precision_strict']}) recall {fd['recall']}")
PY
