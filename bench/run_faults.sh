#!/usr/bin/env bash
# The fault-injection suite over DDS (robo-stack check faults): one fault per scenario, every command judged
# against the safety envelope; TRIALS (20) freezes of sim_node per clock mode for the hold latency.
# Writes bench/results/faults.json and prints the table. Run alone: latencies are timing-sensitive.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( (RANDOM % 100) + 101 ))}" ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
"$RS" check faults --trials "${TRIALS:-20}" --json "$OUT/faults.json" "$@"
