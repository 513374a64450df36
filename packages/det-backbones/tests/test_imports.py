"""det-backbones imports, of the project's packages, only det-io and det-ops (the package
table of docs/architecture.md).

Its line there: det-backbones  det_backbones  det-io, det-ops (torch). det-backbones,
det-heads and det-data never import each other; det-io reads its Detectron .pkl files.
"""

import ast
from pathlib import Path

SRC = Path(__file__).parents[1] / "src" / "det_backbones"
ALLOWED = {"det_backbones", "det_io", "det_ops"}


def project_imports(src: Path) -> dict[str, list[str]]:
    """The det_* packages imported by the modules under src: {package: [file:line, ...]}."""
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
                package = module.split(".")[0]
                if package.startswith("det_"):
                    where = f"{path.relative_to(src)}:{node.lineno}"
                    found.setdefault(package, []).append(where)
    return found


def test_imports_only_what_design_allows():
    found = project_imports(SRC)
    assert "det_backbones" in found  # the scan sees the package's own imports
    forbidden = {package: where for package, where in found.items() if package not in ALLOWED}
    assert not forbidden, (
        f"det_backbones imports packages docs/design.md does not allow: {forbidden}"
    )
