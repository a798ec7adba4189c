# Sourced by the bench scripts: ROOT (the repository), RS (the project's CLI in .venv) and OUT
# (bench/results, created).
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RS="$ROOT/.venv/bin/robo-stack"
OUT="$ROOT/bench/results"
mkdir -p "$OUT"
