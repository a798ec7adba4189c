#!/usr/bin/env bash
# Run pytest in the project venv. Extra arguments go to pytest.
# Exit code 5 (no tests collected) is an error here, never a silent pass.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
"${ROBO_VENV:-$ROOT/.venv}/bin/python" -m pytest "$@"
rc=$?
if [[ $rc -eq 5 ]]; then
  echo "run_tests: pytest collected no tests - treating as a failure" >&2
  exit 1
fi
exit $rc
