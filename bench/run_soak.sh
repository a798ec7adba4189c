#!/usr/bin/env bash
# Soak: sim_node + cerebellum_node over DDS for SOAK_MIN (10) minutes, episodes back to back with the
# simulator's expert plans (StackConfig(brain="oracle"): no brain_node, so the soak is not bound by the
# brain model's CPU). Every 10 s: RSS, CPU %, open fds and threads of each node process from /proc; per
# minute the p99 of the control loop's period (the cerebellum's own clock, /robo/cerebellum_diagnostics)
# and of the /robo/ee_target inter-arrival at a subscriber; plans and execution statuses received
# against published. Writes bench/results/soak.json and bench/results/soak.png; exit code 1 when the
# verdict fails (RSS growth >= 5 % after the first minute, a minute's control period p99 > 1.2x the
# first's, a plan lost). SOAK_MIN=2 for a quick check. Run it alone: it measures the machine as much
# as the stack.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
"$RS" bench soak --minutes "${SOAK_MIN:-10}" --out "$OUT/soak.json" --plot "$OUT/soak.png" \
    --log-dir "$ROOT/runs/soak" "$@"
