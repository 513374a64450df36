"""Writing a file so that a failure never costs its last good content.

Checkpoints, the metric log and evaluation results are written to a temp file in the same
directory, flushed and fsync-ed, then renamed over the destination with ``os.replace``
(atomic on POSIX and Windows within one file system). A full disk (ENOSPC), an I/O error
(EIO) or a kill while writing leaves the previous file as it was, and no temp file behind.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


class WriteError(OSError):
    """Writing a file failed; the file still holds its previous content (if it had one).

    ``errno`` is the failure's (ENOSPC, EIO, ...) when the writer reported one.
    """


def write_atomically(
    path: str | os.PathLike, write: Callable[[BinaryIO], None], *, what: str
) -> Path:
    """Calls ``write(file)`` on a temp file beside ``path``, then renames it over ``path``.

    Args:
        path: the destination; its directory is created if missing.
        write: writes the whole content into the binary file it is given.
        what: what the file is, for the error message ("checkpoint", "metric log").

    Returns:
        ``path``.

    Raises:
        WriteError: the write, flush, fsync or rename failed with an OSError (or torch's
            RuntimeError for a failed write inside ``torch.save``); the message names the
            file and the cause, and says that the previous content is kept.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp_name, path)
    except BaseException as err:
        # Ctrl-C, a full disk, an I/O error: the destination is untouched, drop the debris.
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        if isinstance(err, (OSError, RuntimeError)):
            kept = "its previous content is kept" if path.exists() else "nothing was written"
            cause = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
            message = f"writing the {what} {path} failed ({type(err).__name__}: {cause}); {kept}"
            code = getattr(err, "errno", None)
            raise (WriteError(message) if code is None else WriteError(code, message)) from err
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not possible on every platform (Windows).
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
