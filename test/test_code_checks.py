"""Static checks over the whole tree: unused imports, undefined names, shadowed loop vars."""
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
