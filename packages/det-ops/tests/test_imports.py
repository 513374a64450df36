"""det-ops imports no other package of the project (docs/design.md's table).

Its line there: det-ops  det_ops  numpy (torch optional); test_packaging.py checks that the
numpy path imports no torch.
"""

import ast
from pathlib import Path

SRC = Path(__file__).parents[1] / "src" / "det_ops"
ALLOWED = {"det_ops"}


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
    assert "det_ops" in found  # the scan sees the package's own imports
    forbidden = {package: where for package, where in found.items() if package not in ALLOWED}
    assert not forbidden, f"det_ops imports packages docs/design.md does not allow: {forbidden}"
