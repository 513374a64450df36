"""Every package imports only what docs/design.md allows, and nothing private of another.

The allowed project imports are read from the package table of docs/design.md, so the table
and this test cannot drift apart. Two rules, checked on the source of every package:

1. a package imports only the project packages on its line (and itself);
2. of another package it imports only public modules and names: no dotted part and no
   imported name starting with an underscore (``det_ops._torch`` is det-ops' own business;
   ``det_ops.torch_ops`` is the public way in);
3. of the packages in ``EXPORTS_ONLY`` it imports only the names their ``__init__.py``
   exports (``__all__``), never a submodule: ``from det_models import RunConfig``, not
   ``from det_models.config import RunConfig``.

Run once for the whole repository by ``nox -s tests``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
DESIGN = ROOT / "docs" / "design.md"
# Packages used only through their exports (rule 3).
EXPORTS_ONLY = ("det_models",)


def allowed_imports(design: Path = DESIGN) -> dict[str, set[str]]:
    """{import name: project import names it may use} from the design's package table.

    A table line reads ``packages/det-x  det_x  requirements  contents``, the columns two or
    more spaces apart; the project packages among the requirements are named ``det-...``.
    """
    table = design.read_text().split("## Packages and their only allowed dependencies", 1)[1]
    block = table.split("```", 2)[1]
    allowed: dict[str, set[str]] = {}
    for line in block.splitlines():
        if not line.startswith("packages/"):
            continue
        _, name, requirements, *_ = re.split(r"\s{2,}", line.strip())
        needs = {r.strip(" ,").replace("-", "_") for r in requirements.split(",")}
        allowed[name] = {name} | {r for r in needs if r.startswith("det_")}
    return allowed


def exported_names(init: Path) -> set[str]:
    """The names in the ``__all__`` list of a package's ``__init__.py``."""
    for node in ast.parse(init.read_text(), str(init)).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return {ast.literal_eval(e) for e in node.value.elts}
    return set()


def violations(
    src: Path, package: str, allowed: set[str], exports: dict[str, set[str]] | None = None
) -> list[str]:
    """The imports under src (the package's source folder) that break a rule, as
    ``file:line: import``; ``exports``: {package of EXPORTS_ONLY: the names it exports}."""
    exports = exports or {}
    found = []
    for path in sorted(src.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imports = [(alias.name, None) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imports = [(node.module, alias.name) for alias in node.names]
            else:
                continue
            for module, name in imports:
                top = module.split(".")[0]
                if not top.startswith("det_") or top == package:
                    continue
                parts = [*module.split(".")[1:], *([name] if name else [])]
                private = [p for p in parts if p.startswith("_")]
                unexported = top in exports and (
                    module != top or (name is not None and name not in exports[top])
                )
                if top not in allowed or private or unexported:
                    text = f"from {module} import {name}" if name else f"import {module}"
                    found.append(f"{path.relative_to(src.parent)}:{node.lineno}: {text}")
    return found


def _sources() -> dict[str, Path]:
    """{import name: source folder} of every package under packages/."""
    return {
        src.name: src
        for pkg in sorted((ROOT / "packages").iterdir())
        for src in (pkg / "src").glob("det_*")
        if (src / "__init__.py").is_file()
    }


def test_the_design_table_names_every_package():
    allowed = allowed_imports()
    assert set(allowed) == set(_sources())
    assert allowed["det_heads"] == {"det_heads", "det_ops"}
    assert allowed["det_engine"] == {"det_engine", "det_models", "det_data"}


def _exports() -> dict[str, set[str]]:
    return {name: exported_names(_sources()[name] / "__init__.py") for name in EXPORTS_ONLY}


@pytest.mark.parametrize("package", sorted(_sources()))
def test_imports_keep_to_the_design(package):
    found = violations(_sources()[package], package, allowed_imports()[package], _exports())
    assert not found, f"{package} breaks docs/design.md's import rules:\n" + "\n".join(found)


def test_a_planted_private_or_forbidden_import_is_found(tmp_path):
    src = tmp_path / "det_heads"
    src.mkdir()
    (src / "ok.py").write_text("import det_ops.torch_ops\nfrom det_ops.roi_align import x\n")
    (src / "bad.py").write_text(
        "import det_ops._torch\n"
        "from det_ops import _checks\n"
        "from det_ops._arrays import TORCH\n"
        "import det_backbones\n"
        "from det_heads._private import y\n"  # its own private modules are its business
    )
    found = violations(src, "det_heads", allowed_imports()["det_heads"])
    assert found == [
        "det_heads/bad.py:1: import det_ops._torch",
        "det_heads/bad.py:2: from det_ops import _checks",
        "det_heads/bad.py:3: from det_ops._arrays import TORCH",
        "det_heads/bad.py:4: import det_backbones",
    ]


def test_a_package_used_through_its_exports_is_not_reached_into(tmp_path):
    src = tmp_path / "det_engine"
    src.mkdir()
    (src / "ok.py").write_text("from det_models import RunConfig, zoo\nimport det_models\n")
    (src / "bad.py").write_text(
        "from det_models.config import RunConfig\n"
        "import det_models.zoo\n"
        "from det_models import not_exported\n"
    )
    exports = {"det_models": {"RunConfig", "zoo"}}
    found = violations(src, "det_engine", allowed_imports()["det_engine"], exports)
    assert found == [
        "det_engine/bad.py:1: from det_models.config import RunConfig",
        "det_engine/bad.py:2: import det_models.zoo",
        "det_engine/bad.py:3: from det_models import not_exported",
    ]
    assert "RunConfig" in _exports()["det_models"]
