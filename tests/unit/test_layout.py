"""The package's import graph follows the data flow: a module imports only what stands above it.

Read from the source (ast), so function-local imports count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import dancenow

SRC = Path(dancenow.__file__).resolve().parent

# The data flow, top to bottom. A module may import its own layer and the layers above it.
LAYERS = [
    ("__init__", "errors", "atomic"),
    ("config", "device", "tensors"),
    ("video",),
    ("pose",),
    ("similarity", "synthetic"),
    ("data",),
    ("models",),
    ("run",),
    ("train",),
    ("transfer",),
    ("eval",),
    ("app",),
    ("cli", "__main__"),
]
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}


def _unit(module: str) -> str:
    """'dancenow.train.loop' -> 'train'; 'dancenow' -> '__init__'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "dancenow"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] == "dancenow":
                out.add(node.module)
    return out


def _modules() -> dict[str, Path]:
    mods = {}
    for p in SRC.rglob("*.py"):
        rel = p.relative_to(SRC).with_suffix("")
        mods[".".join(("dancenow", *rel.parts))] = p
    return mods


def test_every_module_has_a_layer():
    unknown = sorted({_unit(m) for m in _modules()} - set(RANK))
    assert not unknown, f"add these to LAYERS: {unknown}"


def test_no_import_against_the_data_flow():
    back = []
    for mod, path in _modules().items():
        me = RANK[_unit(mod.replace(".__init__", ""))]
        for imp in _imports(path):
            if RANK[_unit(imp)] > me:
                back.append(f"{mod} -> {imp}")
    assert back == [], back


def test_the_checker_sees_a_back_edge(tmp_path):
    bad = tmp_path / "m.py"
    bad.write_text("def f():\n    from dancenow.eval.metrics import ssim\n")
    assert _imports(bad) == {"dancenow.eval.metrics"} and RANK[_unit("dancenow.eval.metrics")] > RANK["train"]
