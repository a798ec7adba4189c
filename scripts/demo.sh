#!/usr/bin/env bash
# The main job, as far as the stack goes today (brain, cerebellum and simulator are not yet joined
# into the closed-loop demo):
#   1. a Plan round-trips between two processes over Fast DDS (the ROS 2 layer);
#   2. the scripted expert runs 8 simulated episodes (two per task family) and reports success;
#   3. two episodes are recorded as rosbag2 (mcap) under runs/demo-bags.
# The closed-loop demo (brain + cerebellum + simulated Panda over ROS 2) replaces this.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ROBO_VENV:-$ROOT/.venv}"
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( (RANDOM % 100) + 101 ))}" ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
echo "[demo] NOTE: the closed-loop demo (brain + cerebellum + simulator) is not built yet; this runs the foundation and the simulator."
echo "[demo] 1/3 ROS 2: Plan round trip between two processes"
"$VENV/bin/robo-stack" check ros
echo "[demo] 2/3 scripted expert on the simulated Panda (8 episodes, unseen split)"
"$VENV/bin/robo-stack" sim eval --episodes 8 --split unseen 2>/dev/null
echo "[demo] 3/3 recording 2 episodes as rosbag2 into runs/demo-bags"
"$VENV/bin/robo-stack" sim collect --episodes 2 --split seen --out "$ROOT/runs/demo-bags" 2>&1 | grep -v "pybullet build time" | tail -n 1
echo "[demo] done"
