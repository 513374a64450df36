"""det-models imports, of the project's packages, only det-backbones and det-heads
(docs/design.md's table): the kernels of det-ops reach it through those two.

Its line there: det-models  det_models  det-backbones, det-heads
"""

import ast
from pathlib import Path

SRC = Path(__file__).parents[1] / "src" / "det_models"
ALLOWED = {"det_backbones", "det_heads", "det_models"}


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
    assert "det_models" in found  # the scan sees the package's own imports
    forbidden = {package: where for package, where in found.items() if package not in ALLOWED}
    assert not forbidden, f"det_models imports packages docs/design.md does not allow: {forbidden}"
