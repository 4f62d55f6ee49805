#!/usr/bin/env bash
# Builds this package and every interface package under msgs/ with colcon in a throw-away
# workspace against the venv's ament (as on a ROS machine, where `colcon build` is how the
# package is installed), then checks the install tree: lib/clip_perception/<every executable
# setup.py declares>, share/clip_perception/{launch,config,package.xml}, the ament index
# markers, each interface package's messages and Python module, and that an installed
# executable runs. Needs scripts/setup_venv.sh first.
#
# colcon lives in a venv of its own: colcon-core requires setuptools<80, which must not
# downgrade the project venv's (torch needs >=77; others may need newer).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
[[ -x $PY ]] || { echo "[colcon] ERROR: $PY missing; run: bash scripts/setup_venv.sh" >&2; exit 1; }
log() { echo "[colcon] $*"; }
fail() { echo "[colcon] FAILED: $*" >&2; exit 1; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/clip_perception_colcon.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
log "colcon tools venv in $WORK/tools"
python3.11 -m venv "$WORK/tools"
"$WORK/tools/bin/python" -m pip install --quiet --disable-pip-version-check \
  colcon-core==0.21.3 colcon-ros==0.5.0 colcon-python-setup-py==0.2.9 colcon-cmake==0.2.30

# The workspace: this checkout and each interface package, side by side under src/.
WS="$WORK/ws"
mkdir -p "$WS/src"
ln -s "$ROOT" "$WS/src/clip_perception"
msg_pkgs=()
for d in "$ROOT"/msgs/*/; do
  [[ -f $d/package.xml ]] || continue
  name="$(basename "$d")"
  ln -s "${d%/}" "$WS/src/$name"
  msg_pkgs+=("$name")
done
log "building clip_perception ${msg_pkgs[*]} in $WS"
start=$SECONDS
(
  cd "$WS"
  export AMENT_PREFIX_PATH="$VENV" PATH="$VENV/bin:$PATH"
  "$WORK/tools/bin/colcon" build --event-handlers console_direct- \
    --cmake-args -DPython3_EXECUTABLE="$PY" -DBUILD_TESTING=OFF >"$WORK/build.log" 2>&1
) || { tail -n 60 "$WORK/build.log" >&2; fail "colcon build (last lines above)"; }
log "colcon build took $((SECONDS - start)) s"

INSTALL="$WS/install"
need() { [[ -e $1 ]] || fail "missing from the install tree: ${1#"$WS/"}"; }

P="$INSTALL/clip_perception"
executables="$("$PY" - "$ROOT/setup.py" <<'PYEOF'
import ast, sys
tree = ast.parse(open(sys.argv[1]).read())
for node in ast.walk(tree):
    if isinstance(node, ast.Dict):
        for key, value in zip(node.keys, node.values):
            if isinstance(key, ast.Constant) and key.value == "console_scripts":
                print(" ".join(ast.literal_eval(value)[i].split("=")[0].strip()
                               for i in range(len(value.elts))))
PYEOF
)"
[[ -n $executables ]] || fail "no console_scripts found in setup.py"
for exe in $executables; do
  [[ -x $P/lib/clip_perception/$exe ]] || fail "lib/clip_perception/$exe missing or not executable"
done
need "$P/share/clip_perception/package.xml"
need "$P/share/clip_perception/launch/clip_perception.launch.py"
for f in "$ROOT"/config/*; do need "$P/share/clip_perception/config/$(basename "$f")"; done
need "$P/share/ament_index/resource_index/packages/clip_perception"
SITE="$(echo "$P"/lib/python3.*/site-packages)"
need "$SITE/clip_perception/cli/node.py"
# An installed executable runs from the install tree (not from this checkout): the shebang
# names colcon's own Python, so run it with the venv's, as `ros2 run` would with the distro's.
out="$(cd "$WORK" && PYTHONPATH="$SITE" "$PY" "$P/lib/clip_perception/demo" --help)" ||
  fail "installed demo --help failed"
[[ $out == *"--labels"* ]] || fail "installed demo --help printed no usage"
where="$(cd "$WORK" && PYTHONPATH="$SITE" "$PY" -c 'import clip_perception; print(clip_perception.__file__)')"
[[ $where == "$SITE"/* ]] || fail "clip_perception imported from $where, not the install tree"
log "clip_perception: executables ($executables), launch, config, package.xml, ament index: ok"

# The venv's ros_wheels_bootstrapper re-executes Python with .venv/lib on LD_LIBRARY_PATH in
# no fixed order, where the venv's own build of the same interface package would shadow the
# one under test: take its path once and put the install tree's lib first ourselves.
VENV_LD="$(env -u _ROS_WHEELS_BOOTSTRAP_COMPLETE "$PY" -c 'import os; print(os.environ.get("LD_LIBRARY_PATH", ""))')"
for name in "${msg_pkgs[@]}"; do
  M="$INSTALL/$name"
  need "$M/share/$name/package.xml"
  need "$M/share/ament_index/resource_index/packages/$name"
  need "$M/share/ament_index/resource_index/rosidl_interfaces/$name"
  for f in "$ROOT/msgs/$name"/msg/*.msg "$ROOT/msgs/$name"/srv/*.srv; do
    [[ -e $f ]] || continue  # a package without msg/ or srv/
    need "$M/share/$name/$(basename "$(dirname "$f")")/$(basename "$f")"
  done
  MSITE="$(echo "$M"/lib/python3.*/site-packages)"
  types="$(cd "$ROOT/msgs/$name/msg" && ls *.msg | sed 's/\.msg$//' | tr '\n' ' ')"
  (cd "$WORK" && PYTHONPATH="$MSITE" LD_LIBRARY_PATH="$M/lib:$VENV_LD" \
     _ROS_WHEELS_BOOTSTRAP_COMPLETE=1 "$PY" - "$name" "$MSITE" $types <<'PYEOF'
import importlib, sys
from rclpy.serialization import deserialize_message, serialize_message
name, site, types = sys.argv[1], sys.argv[2], sys.argv[3:]
module = importlib.import_module(f"{name}.msg")
assert module.__file__.startswith(site), f"{name} imported from {module.__file__}, not {site}"
for t in types:
    cls = getattr(module, t)
    assert deserialize_message(serialize_message(cls()), cls) == cls(), t
PYEOF
  ) || fail "$name from the install tree does not import/serialise"
  log "$name: messages ($types), Python module, ament index: ok"
done
log "ok"
