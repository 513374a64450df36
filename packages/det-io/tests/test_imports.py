"""det-io imports no project package (docs/design.md's table): every other package may use it.

Its line there: det-io  det_io  numpy.
"""

import ast
from pathlib import Path

SRC = Path(__file__).parents[1] / "src" / "det_io"
ALLOWED = {"det_io"}
THIRD_PARTY = {"numpy"}


def imports(src: Path) -> dict[str, list[str]]:
    """The top-level modules imported by the modules under src: {module: [file:line, ...]}."""
    found: dict[str, list[str]] = {}
    for path in sorted(src.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules = [node.module]
            else:
                continue
            for module in modules:
                where = f"{path.relative_to(src)}:{node.lineno}"
                found.setdefault(module.split(".")[0], []).append(where)
    return found


def test_imports_only_what_design_allows():
    found = imports(SRC)
    assert "det_io" in found  # the scan sees the package's own imports
    project = {m: where for m, where in found.items() if m.startswith("det_") and m not in ALLOWED}
    assert not project, f"det_io imports project packages: {project}"


def test_imports_only_numpy_beside_the_standard_library():
    import sys

    found = imports(SRC)
    outside = {
        m: where
        for m, where in found.items()
        if m not in sys.stdlib_module_names and m not in ALLOWED | THIRD_PARTY
    }
    assert not outside, f"det_io imports more than numpy: {outside}"
