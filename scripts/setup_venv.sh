#!/usr/bin/env bash
# The ONE setup command (see README): creates .venv in the repo root, installs every pin of
# requirements.txt, then builds the interface packages under msgs/ (vision_msgs, clip_perception_msgs)
# with the PyPI ROS toolchain and installs them into the venv. Re-running is safe and fast: each step is
# skipped while its stamp file in .venv still matches its inputs.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
REQ_STAMP="$VENV/.setup-requirements.sha256"

log() { echo "[setup] $*"; }
die() { echo "[setup] ERROR: $*" >&2; exit 1; }

# --- tools: the ROS wheels are cp311 builds, rosidl generates C and C++ --------------------
PYTHON=""
for cand in python3.11 python3; do
  if command -v "$cand" >/dev/null 2>&1 &&
     "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
    PYTHON="$cand"; break
  fi
done
[[ -n $PYTHON ]] || die "Python 3.11 not found (tried python3.11, python3); the ROS 2 wheels are cp311-only."
command -v cmake >/dev/null 2>&1 || die "cmake not found (apt-get install cmake)."
command -v "${CC:-cc}" >/dev/null 2>&1 || die "C compiler '${CC:-cc}' not found (apt-get install build-essential)."
command -v "${CXX:-c++}" >/dev/null 2>&1 || die "C++ compiler '${CXX:-c++}' not found (apt-get install build-essential)."
command -v make >/dev/null 2>&1 || die "make not found (apt-get install build-essential)."

# --- 1. venv ---------------------------------------------------------------------------------
if [[ ! -x $VENV/bin/python ]]; then
  log "creating $VENV with $PYTHON ($("$PYTHON" --version 2>&1))"
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' ||
  die "$VENV is not a Python 3.11 venv; delete it and re-run."
PY="$VENV/bin/python"

# --- 2. requirements (skipped while requirements.txt is unchanged) --------------------------
REQ_HASH="$(sha256sum "$ROOT/requirements.txt" | cut -d' ' -f1)"
if [[ -f $REQ_STAMP && "$(cat "$REQ_STAMP")" == "$REQ_HASH" ]]; then
  log "requirements.txt unchanged since last install, skipping pip"
else
  log "pip install -r requirements.txt (first time: ~2 min, ~6 GB)"
  rm -f "$REQ_STAMP"
  "$PY" -m pip install --disable-pip-version-check -r "$ROOT/requirements.txt"
  echo "$REQ_HASH" >"$REQ_STAMP"
fi

# --- 3. interface packages under msgs/ (each skipped while its folder, the pins and this script
# are unchanged). Built in MSG_PACKAGES order so a package can depend on an earlier one; a
# folder listed here but absent is skipped. A changed requirements.txt may bring a new
# std_msgs/rosidl ABI, so it is part of every key.
MSG_PACKAGES=(vision_msgs clip_perception_msgs)
PY_INC="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
NP_INC="$("$PY" -c 'import numpy; print(numpy.get_include())')"
BUILD_ROOT="$(mktemp -d "${TMPDIR:-/tmp}/clip_perception_msgs_build.XXXXXX")"
trap 'rm -rf "$BUILD_ROOT"' EXIT
repaired=0
for pkg in "${MSG_PACKAGES[@]}"; do
  src="$ROOT/msgs/$pkg"
  [[ -d $src ]] || continue
  stamp="$VENV/.setup-$pkg.sha256"
  hash="$(cd "$ROOT" && { find "msgs/$pkg" -type f -print0 | LC_ALL=C sort -z |
    xargs -0 sha256sum; echo "$REQ_HASH"; sha256sum scripts/setup_venv.sh; } | sha256sum | cut -d' ' -f1)"
  if [[ -f $stamp && "$(cat "$stamp")" == "$hash" ]] && "$PY" -c "import $pkg.msg" 2>/dev/null; then
    log "$pkg up to date, skipping build"
    continue
  fi
  rm -f "$stamp"
  if (( ! repaired )); then
    # The wheels' *__rosidl_generator_pyExport.cmake name the Python/numpy include folders of
    # the machine that built them (/opt/python/cp311-cp311/...); point them at ours. Idempotent:
    # once rewritten the pattern no longer matches (a pip reinstall just gets rewritten again).
    [[ -f $PY_INC/Python.h ]] || die "Python headers missing at $PY_INC (Python.h); install python3.11-dev."
    log "repairing *__rosidl_generator_pyExport.cmake include folders -> $PY_INC, $NP_INC"
    find "$VENV/share" -name '*__rosidl_generator_pyExport.cmake' -print0 |
      xargs -0 -r sed -i \
        -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$NP_INC#g" \
        -e "s#/opt/python/cp311-cp311/include/python3.11#$PY_INC#g"
    repaired=1
  fi
  build="$BUILD_ROOT/$pkg"
  log "building $pkg in $build, installing into $VENV"
  # Same variables an activated venv + sourced ROS setup would give, for the build only.
  # Installing into the venv prefix puts the libraries in .venv/lib, which the wheels'
  # ros_wheels_bootstrapper.pth adds to LD_LIBRARY_PATH at interpreter start, and the Python
  # package in site-packages: nothing is needed at run time.
  (
    export VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH" AMENT_PREFIX_PATH="$VENV"
    cmake -S "$src" -B "$build" -DCMAKE_INSTALL_PREFIX="$VENV" \
      -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$PY" >"$build.configure.log" 2>&1 ||
      { cat "$build.configure.log" >&2; die "cmake configure of $pkg failed (log above)."; }
    cmake --build "$build" -j "$(nproc)" >"$build.build.log" 2>&1 ||
      { tail -n 60 "$build.build.log" >&2; die "$pkg build failed (last lines above)."; }
    cmake --install "$build" >/dev/null
  )
  echo "$hash" >"$stamp"
done

# --- 4. this package, editable: its executables (clip_perception_node, demo, train_adapter,
# ...) become commands in .venv/bin and run the code of this checkout. --no-deps: every
# dependency is pinned in requirements.txt above. Skipped while setup.py/setup.cfg and the
# checkout's path are unchanged (another checkout sharing the venv re-points it).
PKG_STAMP="$VENV/.setup-clip_perception.sha256"
PKG_HASH="$(cd "$ROOT" && { sha256sum setup.py setup.cfg; echo "$ROOT"; } | sha256sum | cut -d' ' -f1)"
if [[ -f $PKG_STAMP && "$(cat "$PKG_STAMP")" == "$PKG_HASH" ]]; then
  log "clip_perception already installed (editable) from $ROOT, skipping"
else
  rm -f "$PKG_STAMP"
  log "pip install --no-deps -e $ROOT (the package's executables into $VENV/bin)"
  "$PY" -m pip install --disable-pip-version-check --quiet --no-deps -e "$ROOT" ||
    die "installing clip_perception into the venv failed (output above)."
  echo "$PKG_HASH" >"$PKG_STAMP"
fi
missing="$("$PY" - "$VENV/bin" <<'PYEOF'
import importlib.metadata as md, os, sys
names = [e.name for e in md.distribution("clip_perception").entry_points
         if e.group == "console_scripts"]
print(" ".join(n for n in names if not os.access(os.path.join(sys.argv[1], n), os.X_OK)))
PYEOF
)" || die "clip_perception is not installed in the venv."
[[ -z $missing ]] || die "executables missing from $VENV/bin: $missing"

# --- 5. check, in a clean environment, exactly what the README promises ----------------------
env -u AMENT_PREFIX_PATH -u LD_LIBRARY_PATH -u _ROS_WHEELS_BOOTSTRAP_COMPLETE "$PY" -c \
  'from vision_msgs.msg import Classification, ObjectHypothesis; import rclpy.serialization as s
s.serialize_message(Classification(results=[ObjectHypothesis(class_id="x", score=1.0)]))' ||
  die "the venv cannot import rclpy + vision_msgs.msg; see the error above."
log "done: $VENV is ready (run tests with: bash scripts/run_tests.sh)"
