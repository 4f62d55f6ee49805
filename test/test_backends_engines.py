"""The one table of engines (engines.py) and the shape of core/backends: no import cycle,
package imports at the top of files, engine modules that only wrap a session."""
import ast
from pathlib import Path

import pytest

from clip_perception.core.backends import BACKENDS, ENGINES, PRECISIONS, engines
from clip_perception.core.backends.base import BackendUnavailable, MissingCapability
from clip_perception.ros.parameters import PARAMETERS, ParameterError, validate

PACKAGE = Path(engines.__file__).parent
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py"))


def package_imports(name: str):
    """(modules of core/backends that ``name`` imports, those imported below the top level)."""
    tree = ast.parse((PACKAGE / f"{name}.py").read_text())
    top = {id(n) for n in tree.body}
    found, nested = set(), set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom) or node.level != 1:
            continue
        targets = ([node.module.split(".")[0]] if node.module
                   else [a.name for a in node.names])
        targets = {t for t in targets if t in MODULES}
        found |= targets
        if id(node) not in top:
            nested |= targets
    return found, nested


def test_import_graph_of_core_backends_has_no_cycle():
    graph = {m: package_imports(m)[0] - {"__init__"} for m in MODULES if m != "__init__"}
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for dep in sorted(graph[m]):
            if state.get(dep) == "open":
                cycle = stack[stack.index(dep):] + [dep]
                pytest.fail("import cycle in core/backends: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_package_imports_are_at_the_top_of_files():
    nested = {m: sorted(package_imports(m)[1]) for m in MODULES}
    assert {m: n for m, n in nested.items() if n} == {}


@pytest.mark.parametrize("module", ["openvino_backend", "onnxruntime_backend", "torch_backend"])
def test_engine_modules_only_wrap_a_session(module):
    imports, _ = package_imports(module)
    assert imports <= {"base"}, imports  # no export, quantisation, verification or table
    assert "from_clip" not in (PACKAGE / f"{module}.py").read_text()


def test_one_row_per_backend_and_precision_and_the_option_names_come_from_it():
    keys = [(e.backend, e.precision) for e in ENGINES]
    assert len(keys) == len(set(keys))
    assert BACKENDS == ("auto", "tensorrt", "openvino", "onnxruntime", "torch")
    assert set(PRECISIONS) == {"auto"} | {e.precision for e in ENGINES}
    assert {(e.backend, e.precision) for e in ENGINES if e.reduced} == {
        ("tensorrt", "fp16"), ("openvino", "bf16"), ("onnxruntime", "int8")}
    for backend in BACKENDS[1:]:
        assert [e.default for e in ENGINES if e.backend == backend].count(True) == 1
    assert [(e.backend, e.precision) for e in engines.candidates("cpu")] == [
        ("openvino", "bf16"), ("openvino", "fp32"), ("onnxruntime", "int8"),
        ("onnxruntime", "fp32")]
    assert engines.precisions("onnxruntime", "cuda:1") == ("fp32",)


@pytest.mark.parametrize("engine", ENGINES, ids=str)
def test_every_rows_check_passes_or_names_what_this_machine_lacks(engine):
    """On any machine: a row's capability check either passes or raises MissingCapability
    naming what is missing; anything else would be a skip that is a bug."""
    for device in engine.devices:
        try:
            engine.check(device)
        except MissingCapability as exc:
            assert exc.lacks and str(exc)
        except BackendUnavailable as exc:  # pragma: no cover - the failure being tested for
            pytest.fail(f"{engine} on {device}: not a missing capability: {exc}")


def test_the_node_rejects_a_backend_precision_no_engine_offers():
    values = {p.name: p.default for p in PARAMETERS}
    with pytest.raises(ParameterError) as info:
        validate({**values, "backend": "openvino", "precision": "int8"})
    assert info.value.parameter == "precision"
    assert "not supported by the openvino backend" in str(info.value)
    validate({**values, "backend": "openvino", "precision": "bf16"})  # a row: valid anywhere
    validate({**values, "backend": "onnxruntime", "precision": "int8", "device": "auto"})
