#!/usr/bin/env bash
# Cerebellum closed-loop figures with the expert's (oracle) plans: success per family on EPISODES clean
# episodes of each split, and failure detection on DETECT_EPISODES clean episodes plus DETECT_EPISODES per
# perturbation mode (seen split). ~20 min on 2 quiet cores with the defaults. Writes bench/results/.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
EPISODES="${EPISODES:-100}"
DETECT_EPISODES="${DETECT_EPISODES:-50}"
cd "$ROOT"
for split in seen unseen; do
  "$RS" eval closed-loop --brain oracle --episodes "$EPISODES" --split "$split" --json \
    > "$OUT/closed_loop_oracle_$split.json"
done
"$RS" eval closed-loop --brain oracle --episodes "$DETECT_EPISODES" --split seen \
  --perturb grasp_offset nudge slip wrong_keypoint --json > "$OUT/closed_loop_oracle_detection.json"
"$ROOT/.venv/bin/python" - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
for name in ("seen", "unseen", "detection"):
    r = json.loads((out / f"closed_loop_oracle_{name}.json").read_text())
    fd = r["failure_detection"]
    print(f"{name:9s} success {r['overall_success']:.2f} {json.dumps(r['success_rate'])} "
          f"detection precision {fd['precision']} (strict {fd['precision_strict']}) recall {fd['recall']}")
PY
