#!/usr/bin/env bash
# Cerebellum benchmark: per-step latency of the shipped Mamba-2 policy beside a KV-cache transformer of
# the same width and depth (one run, so the ratio is meaningful on a shared machine), and the loop rate
# and period jitter of cerebellum_node while sim_node streams 15 Hz images and brain_node sits loaded beside
# them, with the node's own policy steps per second and step times (--no-brain: without brain_node;
# --checkpoint models/cerebellum_200hz: the policy at the control rate). Writes bench/results/.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
"$RS" bench cerebellum --json "$@" | tee "$OUT/cerebellum.json"
