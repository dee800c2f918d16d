"""The core install (pyproject.toml without extras) runs the three scripts: a tiny run of each with the
extras' packages made unimportable, and the commands of an extra refuse in one line naming it."""
import json
import subprocess
import sys

import pytest

from tests.conftest import tiny_argv

# Run a script with robustbench and pytest unimportable (None in sys.modules makes `import` fail), as on
# a core install; the scripts import exchange.eval_only and studies.evaluations as always.
WITHOUT_EXTRAS = ("import sys, runpy; sys.modules.update(robustbench=None, pytest=None); "
                  "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")


def _run(script: str, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WITHOUT_EXTRAS, script, *argv], capture_output=True, text=True,
                          env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": ""})


@pytest.mark.parametrize("script", ["train_eval_part.py", "train_eval_part_t.py", "train_eval_part_m.py"])
def test_each_script_trains_and_evaluates_without_the_extras(script, tiny_folder, tmp_path):
    done = _run(script, *tiny_argv(tiny_folder, tmp_path / "run", "--epochs", "1", "--warm-up", "0",
                                   "--train-subset", "64", "--test-subset", "32"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((tmp_path / "run" / "results.json").read_text())["epochs_done"] == 1


def test_the_robustbench_commands_name_their_extra(tiny_folder, tmp_path):
    done = _run("train_eval_part.py", "--eval-only", "robustbench:Sehwag2021Proxy_R18", "--data-dir", str(tiny_folder),
                "--results", str(tmp_path / "zoo.json"))
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert 'pip install -e ".[robustbench]"' in done.stderr and not (tmp_path / "zoo.json").exists()
