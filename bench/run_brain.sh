#!/usr/bin/env bash
# Brain figures (issue "Brain"): the embedded model (or MODEL=<checkpoint folder>) on EPISODES simulator
# scenes of each split it was not trained on (seeds 1 000 000+): plan exact-match (and with free order of
# independent pick-and-place pairs), subtask F1, 3D keypoint error (matched by subtask index and by step),
# parse failures and latency. ~2 min on one core with the defaults. Writes bench/results/.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
EPISODES="${EPISODES:-100}"
MODEL="${MODEL:-models/brain_embedded}"
cd "$ROOT"
for split in seen unseen; do
  "$RS" eval brain --model "$MODEL" --split "$split" --episodes "$EPISODES" --threads 1 --json --no-progress \
    > "$OUT/brain_$split.json"
done
"$ROOT/.venv/bin/python" - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
for split in ("seen", "unseen"):
    r = json.loads((out / f"brain_{split}.json").read_text())
    fams = {f: (round(v["plan_exact_match"], 2), round(v["keypoint_error_cm_median"], 1)) for f, v in r["per_family"].items()}
    print(f"{split:7s} exact {r['plan_exact_match']:.2f} (any order {r['plan_any_order_match']:.2f}) F1 {r['subtask_f1']:.2f} keypoint {r['keypoint_error_cm_median']:.2f} cm "
          f"(p90 {r['keypoint_error_cm_p90']:.1f}; same step {r['keypoint_error_same_step_cm_median']:.2f}, "
          f"p90 {r['keypoint_error_same_step_cm_p90']:.1f}) parse failures {r['parse_failure_rate']:.2f} latency p50/p95 "
          f"{r['latency_s_p50']:.2f}/{r['latency_s_p95']:.2f} s; per family (exact, cm) {fams}")
PY
