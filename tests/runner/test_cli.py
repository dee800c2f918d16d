"""The command line as a user meets it: help, and one-line errors with exit code 2."""
import subprocess
import sys

import pytest

from tests.conftest import REPO
from part import VARIANTS


def cli(*args: str, script: str = "train_eval_part.py"):
    return subprocess.run([sys.executable, script, *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def in_process(capsys, *args: str) -> tuple[int, str]:
    """The entry point called as the script calls it, in this process (a torch start saved per test):
    its exit code and what it wrote on stderr. A traceback would be an exception escaping the test."""
    from runner.main import main
    capsys.readouterr()
    code = main("part", list(args))
    return code, capsys.readouterr().err


def test_help_lists_defaults():
    out = cli("--help")
    assert out.returncode == 0
    text = " ".join(out.stdout.split())
    for flag in ("--low-epsilon", "--cam-refresh", "--mask-rule", "--eval-only", "--resume",
                 "(default: 80)", "(default: 0.01)", "(default: gradcam)", "(default: 8/255)", "(default: 7/255)",
                 "(default: 2/255)"):
        assert flag in text
    assert "0.0313" not in text
    # Each default beside its own flag (the options section: the first place where the flag stands alone).
    options = text[text.index("options:"):]
    for flag, default in (("--epochs", "80"), ("--lr", "0.01"), ("--cam", "gradcam"), ("--epsilon", "8/255"),
                          ("--low-epsilon", "7/255"), ("--step-size", "2/255")):
        entry = options[options.index(f" {flag} "):]
        assert entry[entry.index("(default: "):].startswith(f"(default: {default})"), flag


@pytest.mark.parametrize("args,needle", [
    (["--epsilon", "8/0"], "invalid number '8/0'"),
    (["--epsilon", "abc"], "invalid number 'abc'"),
    (["--low-epsilon", "9/255"], "--low-epsilon"),
    (["--warm-up", "90"], "--warm-up"),
    (["--eval", "natural,fgsm"], "--eval"),
    (["--model", "vgg"], "invalid choice"),
    (["--rand_init", "maybe"], "invalid boolean 'maybe'"),
    (["--region-eps", "middle=1/255", "--mask-rule", "region"], "invalid --region-eps item"),
])
def test_bad_flags(args, needle):
    out = cli(*args)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and needle in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("script,args,needle", [
    ("part", ["--lr", "-1"], "argument --lr: '-1' is out of range: give a finite number in (0, inf)"),
    ("part", ["--lr", "nan"], "argument --lr: invalid number 'nan': must be finite"),
    ("part", ["--lr", "0"], "argument --lr: '0' is out of range"),
    ("part", ["--momentum", "1"], "argument --momentum: '1' is out of range: give a finite number in [0, 1)"),
    ("part", ["--wd=-1e-4"], "argument --weight-decay/--wd: '-1e-4' is out of range"),
    ("part", ["--weight-decay", "inf"], "invalid number 'inf'"),
    ("part", ["--epsilon", "1e308/1e-308"], "invalid number '1e308/1e-308'"),
    ("part_t", ["--beta", "-6"], "argument --beta: '-6' is out of range"),
    ("part_m", ["--beta", "nan"], "argument --beta: invalid number 'nan'"),
    ("part", ["--step-size", "0"], "argument --step-size: '0' is out of range: give a finite number in (0, 1]"),
    ("part", ["--epsilon", "2"], "argument --epsilon: '2' is out of range"),
    ("part", ["--low-epsilon=-1/255"], "argument --low-epsilon: '-1/255' is out of range"),
    ("part", ["--eval-epsilon", "0"], "argument --eval-epsilon: '0' is out of range"),
    ("part", ["--mask-rule", "region", "--region-eps", "ul=nan"], "argument --region-eps: invalid number 'nan'"),
    ("part", ["--mask-rule", "region", "--region-eps", "ul=3/2"], "argument --region-eps: '3/2' is out of range"),
])
def test_float_flags_finite_and_in_range(script, args, needle, capsys):
    """Checked at parse time (in-process: argparse's error is the same one line and exit 2)."""
    from runner.cli.args import get_args
    with pytest.raises(SystemExit) as exc:
        get_args(script, args)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and needle in err, err


def test_no_data_is_one_line(tmp_path, capsys):
    code, err = in_process(capsys, "--data-dir", str(tmp_path), "--no-download", "--model-dir", str(tmp_path / "m"))
    assert code == 2 and err.count("\n") == 1 and "accepted layouts" in err
    assert not (tmp_path / "m").exists()


def test_unreadable_checkpoint_overwrites_nothing(tmp_path, tiny_folder, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    results = tmp_path / "results.json"
    results.write_text("keep me")
    for flag in ("--eval-only", "--resume"):
        code, err = in_process(capsys, "--data-dir", str(tiny_folder), "--no-download", "--model", "smallcnn", flag,
                               str(bad), "--results", str(results), "--model-dir", str(tmp_path / "m"))
        assert code == 2 and err.count("\n") == 1 and "cannot read checkpoint" in err
    assert results.read_text() == "keep me" and not (tmp_path / "m").exists()


def test_cuda_asked_without_cuda(capsys):
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, err = in_process(capsys, "--device", "cuda", "--data-dir", "/nonexistent", "--no-download")
    assert code == 2 and "CUDA is not available" in err


def test_num_class_must_match_the_data(tiny_folder, tmp_path):
    out = cli("--data-dir", str(tiny_folder), "--no-download", "--model", "smallcnn", "--num-class", "7",
              "--model-dir", str(tmp_path / "m"))
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "--num-class 7" in out.stderr


def test_abbreviated_flags_are_refused():
    """--batch would be taken for --batch-size by plain argparse, unseen by the SVHN override check,
    which would then replace the user's value silently."""
    out = cli("--data", "SVHN", "--batch", "64")
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "unrecognized arguments: --batch 64" in out.stderr
    from runner.cli.args import get_args
    assert get_args("part", ["--data", "SVHN", "--batch-size", "64"]).batch_size == 64


PROBE = """
import runpy, sys
sys.argv = {argv!r}
try:
    runpy.run_{kind}({target!r}, run_name="__main__")
except SystemExit:
    pass
heavy = sorted(m for m in ("torch", "torchvision", "matplotlib") if m in sys.modules)
print("HEAVY", heavy)
"""


@pytest.mark.parametrize("kind,target,argv", [
    ("path", "train_eval_part.py", ["train_eval_part.py", "--help"]),
    ("path", "train_eval_part_t.py", ["train_eval_part_t.py", "--epsilon", "8/0"]),
    ("module", "report", ["report", "--help"]),
    ("module", "experiments.run", ["run", "at_seed1", "--dry-run"]),
])
def test_command_lines_start_without_torch(kind, target, argv):
    out = subprocess.run([sys.executable, "-c", PROBE.format(kind=kind, target=target, argv=argv)], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr


def test_non_finite_loss_stops_with_exit_3(tiny_folder, tmp_path, capsys):
    """An lr of 1e30 blows the weights up in the first epoch: one line naming epoch and batch, exit 3,
    no checkpoint of that epoch, no results."""
    code, err = in_process(capsys, "--data-dir", str(tiny_folder), "--no-download", "--model", "smallcnn",
                           "--batch-size", "16", "--num-steps", "1", "--epochs", "2", "--warm-up", "1", "--lr", "1e30",
                           "--save-freq", "1", "--model-dir", str(tmp_path / "m"), "--eval", "natural", "--no-progress")
    assert code == 3 and err.count("\n") == 1, err
    assert "non-finite training loss in epoch 1, batch " in err
    assert not (tmp_path / "m" / "epoch1.pt").exists() and not (tmp_path / "m" / "results.json").exists()


@pytest.mark.parametrize("method", list(VARIANTS))
def test_every_flag_declares_its_role(method):
    """The resume checks and the report's grouping are derived from the roles: a flag added without
    one (p.add_argument directly) would be neither checked on resume nor a setting of the report."""
    from runner.cli.args import build_parser
    from runner.cli.settings import declare_flags, flag_dest, roles
    parser = build_parser(method)
    flags = {a.dest for a in parser._actions if a.option_strings and a.dest != "help"}
    declared = {}
    declare_flags(lambda role, *names, **kwargs: declared.update({flag_dest(names, kwargs): role}), VARIANTS[method])
    assert flags == set(declared) and all(roles()[k] is r for k, r in declared.items())


@pytest.mark.parametrize("argv,resume_differs,report_differs", [
    (["--lr", "0.02"], {"lr"}, True),                       # TRAINING
    (["--cam", "layercam"], {"cam"}, True),                 # REWEIGHTING
    (["--eval-epsilon", "4/255"], set(), True),             # RESULT
    (["--epochs", "90"], set(), True),                      # RESULT: a larger value trains on
    (["--model-dir", "elsewhere"], set(), False),           # NONE
    (["--seed", "2"], {"seed"}, False),                     # the report's replicate axis
])
def test_roles_drive_resume_checks_and_report_grouping(argv, resume_differs, report_differs):
    from runner.cli.args import get_args
    from report.groups import group_key
    from runner.training.resume import differences
    base, changed = get_args("part", []), get_args("part", argv)
    assert set(differences(vars(base), changed)) == resume_differs
    run = lambda a: {"method": "part", "args": vars(a)}     # noqa: E731
    assert (group_key(run(base)) != group_key(run(changed))) == report_differs


def test_help_lists_the_flags_by_section(capsys):
    """--help: training, PART, evaluation, running; each flag in its section."""
    from runner.cli.args import HELP_GROUPS, get_args
    with pytest.raises(SystemExit):
        get_args("part_t", ["--help"])
    out = capsys.readouterr().out
    starts = [out.index(title + ":") for title in HELP_GROUPS.values()]
    assert starts == sorted(starts)
    section = dict(zip(HELP_GROUPS, (out[a:b] for a, b in zip(starts, starts[1:] + [len(out)]))))
    for group, flags in {"training": ("--epochs", "--lr", "--beta", "--no-reweight"),
                         "part": ("--low-epsilon", "--mask-rule", "--top-share", "--cam "),
                         "evaluation": ("--eval ", "--eval-only", "--test-subset", "--eval-seeding"),
                         "run": ("--data-dir", "--resume", "--threads", "--channels-last")}.items():
        for flag in flags:
            assert f"  {flag}" in section[group], (group, flag)
