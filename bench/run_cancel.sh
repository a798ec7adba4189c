#!/usr/bin/env bash
# Operator cancel: over TRIALS (20) trials, the time from publishing /robo/cancel to the first held
# /robo/ee_target of cerebellum_node (shipped checkpoint, 200 Hz control loop) beside sim_node: p50/p99,
# the control period, and a check that no target moves after the hold. Writes bench/results/cancel.json.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
"$RS" bench cancel --trials "${TRIALS:-20}" --json "$@" | tee "$OUT/cancel.json"
