"""The core install (pyproject.toml without extras) runs the three scripts: a tiny run of each with the
extras' packages made unimportable, and the commands of an extra refuse in one line naming it."""
import json
import subprocess
import sys

from tests.conftest import tiny_argv

# Python with robustbench and pytest unimportable (None in sys.modules makes `import` fail), as on a core
# install; then what follows (a script run as __main__, or the three scripts' main in turn).
WITHOUT_EXTRAS = "import sys, runpy; sys.modules.update(robustbench=None, pytest=None); "


def _python(code: str, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WITHOUT_EXTRAS + code, *argv], capture_output=True, text=True,
                          env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": ""})


def test_the_three_scripts_train_and_evaluate_without_the_extras(tiny_folder, tmp_path):
    """Each script's module is run as __main__ in one process (as `python train_eval_part_t.py ...`)."""
    code = ("import json; argv = json.loads(sys.argv[1]); codes = []\n"
            "for script, out in argv['runs']:\n"
            "    sys.argv = [script, *argv['flags'], '--model-dir', out]\n"
            "    try:\n"
            "        runpy.run_path(script, run_name='__main__')\n"
            "    except SystemExit as stop:\n"
            "        codes.append(stop.code)\n"
            "print(json.dumps(codes))")
    runs = [(s, str(tmp_path / s)) for s in ("train_eval_part.py", "train_eval_part_t.py", "train_eval_part_m.py")]
    flags = tiny_argv(tiny_folder, tmp_path / "unused", "--epochs", "1", "--warm-up", "0", "--train-subset", "64",
                      "--test-subset", "32")
    flags = flags[:flags.index("--model-dir")] + flags[flags.index("--model-dir") + 2:]
    done = _python(code, json.dumps({"runs": runs, "flags": flags}))
    assert done.returncode == 0 and json.loads(done.stdout.splitlines()[-1]) == [0, 0, 0], done.stderr[-2000:]
    for _, out in runs:
        assert json.loads((tmp_path / out / "results.json").read_text())["epochs_done"] == 1


def test_the_robustbench_commands_name_their_extra(tiny_folder, tmp_path):
    done = _python("sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')", "train_eval_part.py",
                   "--eval-only", "robustbench:Sehwag2021Proxy_R18", "--data-dir", str(tiny_folder),
                   "--results", str(tmp_path / "zoo.json"))
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert 'pip install -e ".[robustbench]"' in done.stderr and not (tmp_path / "zoo.json").exists()
