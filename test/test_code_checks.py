"""Static checks over the whole tree: pyflakes, entry points, and the layer rules of
docs/architecture.md (module size, import direction)."""
import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_pyflakes_finds_nothing():
    paths = [str(ROOT / p) for p in ("clip_perception", "test", "benchmarks", "launch")]
    proc = subprocess.run([sys.executable, "-m", "pyflakes", *paths], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_console_script_has_a_main():
    """setup.py's entry points name modules that exist and expose main(argv=None)."""
    import importlib
    import inspect
    import re

    scripts = re.findall(r'"(\w+) = ([\w.]+):(\w+)"', (ROOT / "setup.py").read_text())
    assert {name for name, _, _ in scripts} >= {"clip_perception_node", "demo", "build_engine",
                                                 "train_adapter", "evaluate_prompts"}
    for name, module, func in scripts:
        main = getattr(importlib.import_module(module), func)
        assert list(inspect.signature(main).parameters) == ["argv"], name


MAX_MODULE_LINES = 400
# Layer -> packages it must not import (docs/architecture.md): core knows nothing of ROS, the
# node or training; training never imports the node; ros never imports training.
FORBIDDEN = {
    "core": ("rclpy", "clip_perception.ros", "clip_perception.training", "clip_perception.cli",
             "rcl_interfaces", "sensor_msgs", "vision_msgs", "diagnostic_msgs", "std_msgs"),
    "training": ("rclpy", "clip_perception.ros", "clip_perception.cli"),
    "ros": ("clip_perception.training", "clip_perception.cli"),
}


def _modules():
    return sorted((ROOT / "clip_perception").rglob("*.py"))


def _imported(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved)."""
    return _imported_from(path.read_text(), path.relative_to(ROOT).with_suffix("").parts[:-1])


def _imported_from(source: str, package: tuple) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = list(package[:len(package) - node.level + 1]) if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            names.add(mod)
            names.update(f"{mod}.{a.name}" for a in node.names)
    return names


def test_no_module_over_the_size_limit():
    long = {str(p.relative_to(ROOT)): n for p in _modules()
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_layers_import_one_way():
    bad = []
    for path in _modules():
        layer = path.relative_to(ROOT / "clip_perception").parts[0]
        for name in _imported(path):
            for banned in FORBIDDEN.get(layer, ()):
                if name == banned or name.startswith(banned + "."):
                    bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, "\n".join(sorted(set(bad)))


def test_layer_check_sees_a_violation():
    """The checker itself: a relative import of the node from core, even inside a function."""
    source = "def f():\n    from ..ros.node import ClipPerceptionNode\n"
    assert "clip_perception.ros.node" in _imported_from(source, ("clip_perception", "core"))
