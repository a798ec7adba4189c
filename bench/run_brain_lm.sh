#!/usr/bin/env bash
# Brain v2 figures (issue "Brain v2"): the LoRA-tuned SmolLM2 planner (MODEL=models/brain_lm) on
#   1. EPISODES templated scenes of each split (seeds 1 000 000+, never trained on): exact match,
#      keypoint error, latency (1 torch thread, first plan of each scene);
#   2. the paraphrase set tests/data/paraphrases.jsonl on both splits (never trained on);
#   3. refusals: tests/data/other_languages.txt and tests/data/adversarial.txt (no plan may name an
#      object the scene does not have; each should be refused);
#   4. its own corrections (when the adapter learned them) on correction records of the unseen split made
#      in the simulator with perturbations (seeds 300 000+, made on the first run, never trained on):
#      the diagnosis and the steps left against the expert's answer.
# ~15 min on one core. Writes bench/results/brain_lm_*.json. Run alone (timings).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
EPISODES="${EPISODES:-100}"
MODEL="${MODEL:-models/brain_lm}"
cd "$ROOT"
for split in seen unseen; do
  "$RS" eval brain --model "$MODEL" --split "$split" --episodes "$EPISODES" --threads 1 --json --no-progress \
    > "$OUT/brain_lm_$split.json"
  "$RS" eval brain --model "$MODEL" --instructions tests/data/paraphrases.jsonl --split "$split" --threads 1 \
    --json --no-progress > "$OUT/brain_lm_paraphrases_$split.json"
done
"$RS" eval grounding --model "$MODEL" --threads 1 --json "$OUT/brain_lm_grounding.json" \
  tests/data/other_languages.txt tests/data/adversarial.txt || true
if grep -q -e '"corrections": true' -e '"correction_adapter"' "$MODEL/brain_lm.json"; then
  "$RS" eval brain-corrections --model "$MODEL" --split unseen --episodes "${CORR_EPISODES:-100}" \
    --json "$OUT/brain_lm_corrections_unseen.json" > /dev/null
fi
"$ROOT/.venv/bin/python" - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
for split in ("seen", "unseen"):
    r = json.loads((out / f"brain_lm_{split}.json").read_text())
    p = json.loads((out / f"brain_lm_paraphrases_{split}.json").read_text())
    fams = {f: round(v["plan_exact_match"], 2) for f, v in r["per_family"].items()}
    pf = {f: round(v["plan_exact_match"], 2) for f, v in p["per_family"].items()}
    print(f"{split:7s} templated exact {r['plan_exact_match']:.2f} {fams} keypoint {r['keypoint_error_cm_median']:.2f} cm "
          f"(same step {r['keypoint_error_same_step_cm_median']:.2f}) failures {r['parse_failure_rate']:.2f} "
          f"latency p50/p95 {r['latency_s_p50']:.2f}/{r['latency_s_p95']:.2f} s")
    print(f"{split:7s} paraphrases exact {p['plan_exact_match']:.2f} {pf}")
g = json.loads((out / "brain_lm_grounding.json").read_text())
for path, f in g["files"].items():
    print(f"{path}: {f['instructions']} instructions, {f['refused']} refused, {f['planned']} planned, "
          f"{f['plans_with_ungrounded_names']} plans naming an absent object")
c = out / "brain_lm_corrections_unseen.json"
if c.is_file():
    c = json.loads(c.read_text())
    print(f"corrections (unseen, {c['records']}): diagnosis {c['why_accuracy']}, steps {c['steps_exact']}, "
          f"both {c['both']}, p50/p95 {c['seconds_p50']:.2f}/{c['seconds_p95']:.2f} s; by diagnosis {c['by_why']}")
PY
