"""Atomic file writes: a temporary file in the target's folder, then a rename over the target, so a
reader (or a run interrupted mid-write) sees the old file or the new one, never half of one."""
from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path

# `.<name>.<16 hex digits>.tmp`: the temporary file of a write of <name> (stale_temporaries finds it).
_TEMPORARY = re.compile(r"\.(?P<name>.+)\.[0-9a-f]{16}\.tmp")


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call write(temporary_path), then rename it over `path`; the temporary file never outlives a failure
    (only a kill can leave one: stale_temporaries). The file is created with mode 0666 less the umask,
    as open() would, so collaborators read checkpoints and results where the umask lets them."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
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


def stale_temporaries(folder: Path, names: Callable[[str], bool]) -> list[Path]:
    """Temporary files of atomic writes in `folder` whose target name satisfies `names`: left behind
    by a process killed mid-write (SIGKILL, power loss)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and (m := _TEMPORARY.fullmatch(p.name)) and names(m["name"]))


def write_json(obj: object, path: str | os.PathLike) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(obj, indent=2, default=str) + "\n"))
