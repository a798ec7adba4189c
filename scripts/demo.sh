#!/usr/bin/env bash
# The main job: the closed-loop demo on the embedded defaults (see README.md).
# sim_node, brain_node and cerebellum_node start as separate processes talking over Fast DDS; the
# task's instruction (or INSTRUCTION) is sent on /robo/instruction; the plan and per-subtask progress
# are printed; the run is recorded as rosbag2 and drawn as a GIF under runs/demo/<time>/.
# Exit code 0 when the task succeeded.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ROBO_VENV:-$ROOT/.venv}"
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( (RANDOM % 100) + 101 ))}" ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
cd "$ROOT"
args=(--seed "${SEED:-100001}" --split "${SPLIT:-seen}" --family "${FAMILY:-pick_place}" --brain "${BRAIN:-embedded}")
if [[ -n "${INSTRUCTION:-}" ]]; then
  args+=(--instruction "$INSTRUCTION")
fi
exec "$VENV/bin/robo-stack" demo "${args[@]}" 2> >(grep -v -e "^pybullet build time" -e "^\[transformers\]" >&2)
