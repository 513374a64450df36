"""The compiler's resource report of every CUDA kernel: registers, shared memory, stack and
spills per thread, as ptxas reports them (`nvcc -res-usage`), as a markdown table.

Usage (needs nvcc only, no GPU; from packages/det-ops):
    python tools/resource_usage.py --arch 80 --arch 90 > /tmp/resources.md

Each csrc/cuda/*.cu is compiled as the CMake build compiles it (-O3, C++17) for each
architecture; the table has one row per kernel instantiation (element type and, where a
kernel has two, index type).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CSRC = Path(__file__).resolve().parents[1] / "csrc"

ENTRY = re.compile(r"Compiling entry function '(\w+)' for 'sm_(\d+)'")
FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
USED = re.compile(r"Used (\d+) registers(?:.*?(\d+) bytes smem)?")


def demangle(names: list[str]) -> dict[str, str]:
    """Mangled kernel name -> `kernel<float, int>`, without namespaces and parameters."""
    filt = shutil.which("cu++filt") or "c++filt"
    out = subprocess.run(
        [filt], input="\n".join(names), capture_output=True, text=True, check=True
    ).stdout.splitlines()
    short = {}
    for mangled, full in zip(names, out, strict=True):
        depth, end = 0, len(full)
        for i, ch in enumerate(full):
            depth += ch == "<"
            depth -= ch == ">"
            if ch == "(" and depth == 0 and i > 0 and full[i - 1] != ":":
                end = i
                break
        head = full[:end].removeprefix("void ")
        short[mangled] = head.split("::")[-1] if "<" not in head else _last_name(head)
    return short


def _last_name(head: str) -> str:
    base, args = head[: head.index("<")], head[head.index("<") :]
    args = re.sub(r"\blong\b", "int64", re.sub(r"\bint\b", "int32", args))  # index types
    args = args.replace("det_ops::", "")  # Float16, BFloat16
    return base.split("::")[-1] + args


def report(source: Path, arch: str) -> list[tuple[str, str, int, int, int, int, int]]:
    """(kernel, arch, registers, shared bytes, stack bytes, spill stores, spill loads)."""
    with tempfile.TemporaryDirectory() as tmp:
        result = subprocess.run(
            ["nvcc", "-std=c++17", "-O3", "-DNDEBUG", f"-I{CSRC}", f"-arch=sm_{arch}",
             "-res-usage", "-c", str(source), "-o", str(Path(tmp) / "kernel.o")],
            capture_output=True, text=True,
        )  # fmt: skip
    if result.returncode != 0:
        sys.exit(f"nvcc failed on {source}:\n{result.stderr}")
    rows, name, frame = [], None, (0, 0, 0)
    for line in (result.stdout + result.stderr).splitlines():
        if m := ENTRY.search(line):
            name = m.group(1)
        elif (m := FRAME.search(line)) and name:
            frame = tuple(int(v) for v in m.groups())
        elif (m := USED.search(line)) and name:
            rows.append((name, arch, int(m.group(1)), int(m.group(2) or 0), *frame))
            name, frame = None, (0, 0, 0)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", action="append", help="compute capability, e.g. 80")
    args = parser.parse_args()
    rows = [
        row
        for source in sorted((CSRC / "cuda").glob("*.cu"))
        for arch in args.arch or ["80", "90"]
        for row in report(source, arch)
    ]
    names = demangle(sorted({row[0] for row in rows}))
    archs = sorted({row[1] for row in rows})
    table: dict[str, dict[str, tuple[int, ...]]] = {}
    for name, arch, *usage in rows:
        table.setdefault(names[name], {})[arch] = tuple(usage)
    print(
        "| kernel | "
        + " | ".join(f"registers sm_{a}" for a in archs)
        + " | shared (B) | stack (B) | spill stores / loads (B) |"
    )
    print("|---|" + "---:|" * (len(archs) + 3))
    for kernel, by_arch in sorted(table.items()):
        usage = list(by_arch.values())
        regs = " | ".join(str(by_arch[a][0]) if a in by_arch else "" for a in archs)
        smem = max(u[1] for u in usage)
        stack = max(u[2] for u in usage)
        spills = f"{max(u[3] for u in usage)} / {max(u[4] for u in usage)}"
        print(f"| {kernel} | {regs} | {smem} | {stack} | {spills} |")


if __name__ == "__main__":
    main()
