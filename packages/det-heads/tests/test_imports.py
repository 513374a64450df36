"""det-heads imports, of the project's packages, only det-ops (docs/design.md's table).

Its line there: det-heads  det_heads  torch, det-ops. det-backbones, det-heads and det-data
never import each other.
"""

import ast
from pathlib import Path

SRC = Path(__file__).parents[1] / "src" / "det_heads"
ALLOWED = {"det_heads", "det_ops"}


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
    assert "det_heads" in found  # the scan sees the package's own imports
    forbidden = {package: where for package, where in found.items() if package not in ALLOWED}
    assert not forbidden, f"det_heads imports packages docs/design.md does not allow: {forbidden}"
