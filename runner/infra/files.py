"""Atomic file writes: a temporary file in the target's folder, then a rename over the target, so a
reader (or a run interrupted mid-write) sees the old file or the new one, never half of one."""
from __future__ import annotations

import json
import os
import re
import secrets
import socket
import time
from collections.abc import Callable
from pathlib import Path

# An evaluation's progress beside its results JSON (results.json -> results.eval-progress.json).
PROGRESS_SUFFIX = ".eval-progress.json"
# `.<name>.<pid>@<host>.<8 hex digits>.tmp`: the temporary file of a write of <name> by process <pid> on
# machine <host> (stale_temporaries finds it, and asks whether that process is still alive).
_TEMPORARY = re.compile(r"\.(?P<name>.+)\.(?P<pid>\d+)@(?P<host>\w*)\.[0-9a-f]{8}\.tmp")
_HOST = re.sub(r"\W", "_", socket.gethostname())
# A temporary of another machine (a shared file system) counts as stale after this long: no checkpoint
# write takes an hour.
OTHER_HOST_STALE_SECONDS = 3600


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call write(temporary_path), then rename it over `path`; the temporary file never outlives a failure
    (only a kill can leave one: stale_temporaries). The file is created with mode 0666 less the umask,
    as open() would, so collaborators read checkpoints and results where the umask lets them."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.parent / f".{path.name}.{os.getpid()}@{_HOST}.{secrets.token_hex(4)}.tmp"
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            break
        except FileExistsError:
            continue
    try:
        write(str(tmp))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _writer_gone(match: re.Match, path: Path) -> bool:
    """Whether the process that was writing this temporary file is gone (so the file is left over)."""
    if match["host"] != _HOST:
        try:
            return time.time() - path.stat().st_mtime > OTHER_HOST_STALE_SECONDS
        except OSError:
            return False
    try:
        os.kill(int(match["pid"]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:      # alive, another user's
        return False
    return False


def stale_temporaries(folder: Path, names: Callable[[str], bool]) -> list[Path]:
    """Temporary files of atomic writes in `folder` whose target name satisfies `names` and whose writer
    is gone: left behind by a process killed mid-write (SIGKILL, power loss). A write in progress (its
    process alive on this machine, or a file of another machine touched within the hour) is kept."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and (m := _TEMPORARY.fullmatch(p.name)) and names(m["name"])
                  and _writer_gone(m, p))


def hash_file(h, path: str | os.PathLike):
    """Feed a file's bytes into the hash object h, a megabyte at a time; returns h."""
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h


def write_json(obj: object, path: str | os.PathLike) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(obj, indent=2, default=str) + "\n"))
