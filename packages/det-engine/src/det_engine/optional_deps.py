"""The optional packages of the commands, checked when a command starts, not when it needs them.

A command that would meet a missing package only after training (the quickstart's curves)
or after loading and tracing a model (ONNX export, onnxruntime) checks it first and says what
to install. This is the one table of those packages and of their pip commands. (pycocotools,
for COCO data and evaluation, is a dependency of det-data and det-engine, imported when a
command loads: without it no command starts.)
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class OptionalPackage:
    """A package a command may need: its import name, pip name and det-engine extra."""

    module: str
    pip_name: str
    extra: str  # the det-engine extra that installs it


PACKAGES: dict[str, OptionalPackage] = {
    package.module: package
    for package in (
        OptionalPackage("matplotlib", "matplotlib", "plot"),
        OptionalPackage("tensorboard", "tensorboard", "tensorboard"),
        OptionalPackage("onnx", "onnx", "export"),
        OptionalPackage("onnxscript", "onnxscript", "export"),
        OptionalPackage("onnxruntime", "onnxruntime", "export"),
    )
}


class MissingPackageError(ImportError):
    """A command needs packages that are not installed; the message gives the pip command.

    Attributes:
        missing: the import names of the missing packages.
    """

    def __init__(self, message: str, missing: list[str]) -> None:
        super().__init__(message)
        self.missing = missing


def missing(*modules: str) -> list[str]:
    """The ones of ``modules`` (keys of :data:`PACKAGES`) that cannot be imported."""
    absent = []
    for module in modules:
        if module not in PACKAGES:
            raise ValueError(f"unknown optional package {module!r}; known: {sorted(PACKAGES)}")
        try:
            importlib.import_module(module)
        except ImportError:
            absent.append(module)
    return absent


def install_command(modules: list[str]) -> str:
    """The pip command installing ``modules``, with the det-engine extras that hold them:
    ``pip install onnx onnxscript (or pip install "det-engine[export]")``."""
    names = " ".join(PACKAGES[m].pip_name for m in modules)
    extras = ",".join(sorted({PACKAGES[m].extra for m in modules}))
    return f'pip install {names} (or pip install "det-engine[{extras}]")'


def require(*modules: str, purpose: str) -> None:
    """Raises unless every one of ``modules`` can be imported.

    Args:
        modules: import names (keys of :data:`PACKAGES`).
        purpose: what needs them, for the message ("--format onnx", "COCO evaluation").

    Raises:
        MissingPackageError: naming the missing packages, ``purpose`` and the pip command.
    """
    absent = missing(*modules)
    if absent:
        raise MissingPackageError(
            f"{purpose} needs {' and '.join(absent)}, which "
            f"{'is' if len(absent) == 1 else 'are'} not installed: {install_command(absent)}",
            absent,
        )
