#!/usr/bin/env bash
# The ONE test command (see README): pytest in .venv with the ROS environment the tests need.
# Extra arguments go to pytest; without a test path among them, test/ is run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="$ROOT/.venv/bin/python"
[[ -x $PY ]] || { echo "[test] ERROR: $PY missing; run: bash scripts/setup_venv.sh" >&2; exit 1; }
cd "$ROOT"

# Keep DDS traffic on this machine and pick the RMW the venv has.
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export RMW_IMPLEMENTATION=rmw_fastrtps_cpp
export PYTHONUNBUFFERED=1
# A parent Python of another venv may have exported this guard; the wheels' bootstrapper must
# run for *this* venv to put its .venv/lib on LD_LIBRARY_PATH.
unset _ROS_WHEELS_BOOTSTRAP_COMPLETE

# One DDS domain per run so concurrent runs never see each other's topics. 1..100 stays clear
# of the default 0 and of the ephemeral port range (ids > 101 can collide with it on Linux).
# The id is held by a lock on a file for the life of this script (pytest runs as its child).
unset ROS_DOMAIN_ID
LOCK_DIR="${TMPDIR:-/tmp}/clip_perception_ros_domains"
mkdir -p "$LOCK_DIR"
for i in $(seq 0 99); do
  id=$(( ($$ + i) % 100 + 1 ))
  exec {lock_fd}>"$LOCK_DIR/$id.lock"
  if flock -n "$lock_fd"; then export ROS_DOMAIN_ID=$id; break; fi
  exec {lock_fd}>&-
done
[[ -n ${ROS_DOMAIN_ID:-} ]] || { echo "[test] ERROR: all ROS domain ids 1-100 are in use" >&2; exit 1; }

# Fast DDS 3 reads FASTDDS_DEFAULT_PROFILES_FILE; FASTRTPS_* is the pre-3.0 name (kept for
# older installs). The profile enlarges the shared-memory segment for full camera frames.
if [[ -f $ROOT/config/fastdds_shm.xml ]]; then
  export FASTDDS_DEFAULT_PROFILES_FILE="$ROOT/config/fastdds_shm.xml"
  export FASTRTPS_DEFAULT_PROFILES_FILE="$FASTDDS_DEFAULT_PROFILES_FILE"
fi

# Run test/ unless a test path (file, dir or file::node) was given.
have_path=0
for a in "$@"; do [[ $a != -* && -e ${a%%::*} ]] && have_path=1; done
(( have_path )) || set -- "$@" test

echo "[test] ROS_DOMAIN_ID=$ROS_DOMAIN_ID FASTDDS_DEFAULT_PROFILES_FILE=${FASTDDS_DEFAULT_PROFILES_FILE:-<none>}"
rc=0
"$PY" -m pytest "$@" {lock_fd}>&- || rc=$?
# pytest exits 5 when it collected nothing: that is a failure too (never 0).
(( rc == 5 )) && echo "[test] ERROR: pytest collected no tests" >&2
exit "$rc"
