"""What a result was made with, torch-free: the commit, whether tracked source files had changes
not committed, the CPU and the threads (CPU results differ slightly between CPU models and thread
counts: different kernels, other summation orders)."""
from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]     # the checkout: runner/infra/provenance.py
# Tracked files that are not source: results the runs themselves write and regenerate.
NOT_SOURCE = ("results/",)


def project_path(path: str | Path) -> str:
    """A path as the results record it: relative to the project's folder (`../shared/...` for one beside it),
    so that no machine's absolute path is written; the same file on another machine reads the same."""
    return os.path.relpath(Path(path).resolve(), REPO)


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10, cwd=REPO)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def git_commit() -> str | None:
    out = _git("rev-parse", "HEAD")
    return out.strip() or None if out is not None else None


def source_changes() -> list[str] | None:
    """Tracked source files whose content differs from the commit (None: not a git checkout)."""
    out = _git("status", "--porcelain", "--untracked-files=no")
    if out is None:
        return None
    paths = [line[3:].split(" -> ")[-1] for line in out.splitlines() if line.strip()]
    return [p for p in paths if not p.startswith(NOT_SOURCE)]


def cores_available() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:          # not Linux
        return os.cpu_count() or 1


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def default_threads(local_processes: int = 1) -> int:
    """Torch threads for one of `local_processes` processes sharing this machine's cores."""
    return max(1, cores_available() // max(1, local_processes))
