#!/usr/bin/env bash
# The main job. Today (foundation only): prove the ROS 2 layer end to end - a Plan
# with several subtasks and keypoints published by one process arrives intact in
# another over Fast DDS. The closed-loop demo replaces this as the stack grows.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ROBO_VENV:-$ROOT/.venv}"
echo "[demo] robo_stack foundation demo: Plan round trip between two processes over DDS"
ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( (RANDOM % 100) + 101 ))}" ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST \
  "$VENV/bin/robo-stack" check ros
