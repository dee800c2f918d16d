"""Export one of our checkpoints in RobustBench's layout, with its model_info JSON and a model card.

    python -m exchange.export checkpoint/CIFAR10/ResNet_18/PART/seed1/epoch80.pt --name Me2026PART_R18

writes `data/robustbench/cifar10/Linf/Me2026PART_R18.pt` (--out: another model folder) (a plain state dict: RobustBench's ResNet-18 or
WideResNet-34-10 definition loads it strictly, as does ours), `.json` (RobustBench's model_info, filled
from the run's results JSON: clean and AutoAttack accuracy on the images they were measured on) and
`.md` (the model card). The results JSON is the checkpoint's run's (`results.json` beside it) unless
--results names another. A model RobustBench has no definition for (the small CNNs) is written all the
same, its architecture named in both files.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from exchange.robustbench import ROBUSTBENCH_ARCHITECTURES
from common.argtypes import OneLineParser
from common.errors import UserError
from runner.infra.files import atomic_write

PROG = "python -m exchange.export"
FULL_TEST_SET = 10_000        # CIFAR-10's test images


def _pct(v) -> str:
    return "–" if v is None else f"{v:.2f}"


def training_command(results: dict) -> str:
    """The run's command: its script and every flag whose recorded value differs from the default."""
    from part import VARIANTS
    from runner.cli.args import build_parser
    from runner.cli.settings import flag_names
    args, script = results.get("args", {}), results.get("script", "train_eval_part.py")
    key = {m.script: k for k, m in VARIANTS.items()}.get(script, "part")
    defaults = vars(build_parser(key).parse_args([]))
    names, words = flag_names(), ["python", script]
    for dest, value in args.items():
        if dest not in names or dest not in defaults or value == defaults[dest] or value is None:
            continue
        if dest in ("model_dir", "results", "data_dir", "resume", "eval_only", "overwrite", "no_progress"):
            continue
        if value is True:
            words.append(names[dest])
        elif isinstance(value, list):
            words += [names[dest], ",".join(map(str, value))]
        elif isinstance(value, dict):
            words += [names[dest], ",".join(f"{k}={v:.6g}" for k, v in value.items())]
        elif value is not False:
            words += [names[dest], f"{value:.6g}" if isinstance(value, float) else str(value)]
    return shlex.join(words)


def model_info(results: dict, name: str, architecture: str, authors: str, link: str, venue: str) -> dict:
    """RobustBench's model_info entry; the accuracies as measured, with a footnote where they are on a
    subset of the test set or by another AutoAttack than the authors'."""
    images, aa = results.get("images", {}), results.get("aa-standard")
    notes = []
    if aa is None and results.get("aa") is not None:
        aa = results["aa"]
        notes.append("AutoAttack through torchattacks (the official PART evaluation), not the authors' package")
    if aa is None:
        notes.append("AutoAttack not measured")
    key = "aa-standard" if results.get("aa-standard") is not None else "aa"
    for what, k in (("clean accuracy", "natural"), ("AutoAttack accuracy", key)):
        n = images.get(k)
        if n is not None and n < FULL_TEST_SET:
            notes.append(f"{what} on {n} of the {FULL_TEST_SET:,} test images")
    return {"link": link, "name": name, "authors": authors, "additional_data": False, "number_forward_passes": 1,
            "dataset": "cifar10", "venue": venue, "architecture": architecture, "eps": "8/255",
            "clean_acc": _pct(results.get("natural")), "reported": _pct(aa), "autoattack_acc": _pct(aa),
            **({"footnote": "; ".join(notes)} if notes else {})}


def model_card(results: dict, name: str, architecture: str, info: dict, checkpoint: Path) -> str:
    images, counts = results.get("images", {}), results.get("counts", {})
    rows = []
    for key, label in (("natural", "natural"), ("pgd20", "PGD-20"), ("mma", "MMA"), ("aa", "AutoAttack (torchattacks)"),
                       ("aa-standard", "AutoAttack (the authors', standard)")):
        if results.get(key) is not None:
            rows.append(f"| {label} | {results[key]:.2f} | {counts.get(key)} of {images.get(key)} |")
    missing = [label for key, label in (("natural", "natural"), ("pgd20", "PGD-20"), ("mma", "MMA"),
                                        ("aa-standard", "AutoAttack (the authors')")) if results.get(key) is None]
    data, machine = results.get("data", {}), results.get("machine", {})
    commits = [results.get("git_commit")] + [r.get("git_commit") for r in results.get("resumes", [])]
    return "\n".join([
        f"# {name}", "",
        f"- **Method**: {results.get('method')} (`{results.get('script')}`), trained by this project, the "
        "reference implementation of PART (Zhang et al., ICML 2024).",
        f"- **Architecture**: {architecture}; inputs in [0, 1], no normalisation layer.",
        f"- **Training command** (the flags that differ from their defaults): `{training_command(results)}`",
        f"- **Data**: {data.get('layout')} at {data.get('path')} (sha256 {str(data.get('sha256'))[:16]}…), "
        f"{data.get('train_images')} training and {data.get('test_images')} test images.",
        f"- **Code**: commit {', then '.join(str(c) for c in commits if c) or 'unknown'}"
        + (f"; uncommitted source changes: {', '.join(results['source_changes'])}" if results.get("source_changes")
           else ""),
        f"- **Machine**: {results.get('device')}, {machine.get('cpu')}, {machine.get('threads')} threads, "
        f"torch {results.get('torch')}; epochs {results.get('epochs_done')}.",
        f"- **Checkpoint**: exported from `{checkpoint}`.", "",
        "| evaluation (ε = 8/255) | accuracy (%) | images |", "|---|---|---|", *rows, "",
        f"Not measured: {', '.join(missing) or 'nothing of the above'}."
        + (f" {info['footnote']}." if info.get("footnote") else ""), ""])


# What a checkpoint's record and its results must agree on (besides the run_id and the data's sha256). An
# --eval-only's results record the evaluating command's method and seed: it takes the model and the data
# from the checkpoint (runner/training/run.py's FROM_CHECKPOINT), and its run_id.
SAME_RUN, NOT_FROM_CHECKPOINT = ("method", "model", "seed", "data"), ("method", "seed")


def _identity(record: dict, args: dict) -> dict:
    """What tells a run apart: its settings SAME_RUN, its run_id and its data's sha256 (None: not recorded)."""
    data = record.get("data")
    return {**{k: args.get(k) for k in SAME_RUN}, "run_id": record.get("run_id"),
            "data sha256": data.get("sha256") if isinstance(data, dict) else None}


def differences(ckpt: dict, results: dict) -> list[str]:
    """Where the checkpoint's record and its results disagree ("seed 1 in the checkpoint, 2 in the
    results"), in what both record."""
    args = results.get("args", {})
    mine, theirs = _identity(ckpt, ckpt["args"]), _identity(results, args)
    return [f"{k} {mine[k]} in the checkpoint, {theirs[k]} in the results" for k in mine
            if mine[k] is not None and theirs[k] is not None and mine[k] != theirs[k]
            and not (args.get("eval_only") and k in NOT_FROM_CHECKPOINT)]


def export(checkpoint: str | Path, name: str, out: str | Path, results_path: str | Path | None = None,
           authors: str = "", link: str = "", venue: str = "", overwrite: bool = False) -> list[Path]:
    """The three files in {out}/cifar10/Linf/; every mistake one line (UserError) before anything is written."""
    import torch

    from runner.infra.checkpoint import load_checkpoint
    checkpoint = Path(checkpoint)
    if not name.replace("_", "").replace("-", "").isalnum():
        raise UserError(f"--name {name!r}: use letters, digits, - and _ (RobustBench's names, e.g. Me2026PART_R18)")
    ckpt = load_checkpoint(checkpoint, torch.device("cpu"))
    if "model" not in ckpt or "args" not in ckpt:
        raise UserError(f"{checkpoint} is a bare state dict: export needs one of our checkpoints (its run's "
                        "settings name the model)")
    results_path = Path(results_path) if results_path else checkpoint.parent / "results.json"
    try:
        results = json.loads(results_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read the run's results {results_path} ({exc}); name them with --results") from None
    if not isinstance(results, dict) or not isinstance(results.get("args", {}), dict):
        raise UserError(f"{results_path} is not a results JSON of ours (an object with the run's settings and "
                        "accuracies); name the run's results with --results")
    args = ckpt["args"]
    if "epochs_done" in results and "epoch" in ckpt and results["epochs_done"] != ckpt["epoch"]:
        raise UserError(f"{results_path} holds the accuracies of epoch {results['epochs_done']}, {checkpoint} is "
                        f"epoch {ckpt['epoch']}'s; name this checkpoint's results with --results (an --eval-only of it)")
    differ = differences(ckpt, results)
    if differ:
        raise UserError(f"{results_path} is not {checkpoint}'s run ({'; '.join(differ)}); name this checkpoint's "
                        "results with --results (an --eval-only of it)")
    if args.get("data") != "CIFAR10":
        raise UserError(f"{checkpoint} was trained on {args.get('data')}; RobustBench's layout here is CIFAR-10's")
    model = args.get("model")
    architecture = ROBUSTBENCH_ARCHITECTURES.get(model, f"{model} of this project (models/zoo.py; RobustBench has "
                                                        "no definition for it)")
    folder = Path(out) / "cifar10" / "Linf"
    paths = [folder / f"{name}.pt", folder / f"{name}.json", folder / f"{name}.md"]
    existing = [str(p) for p in paths if p.exists()]
    if existing and not overwrite:
        raise UserError(f"{', '.join(existing)} exist; choose another --name or --out, or add --overwrite")
    info = model_info(results, name, architecture, authors, link, venue)
    card = model_card(results, name, architecture, info, checkpoint)
    try:
        state = {k: v.detach().cpu() for k, v in ckpt["model"].items()}
        atomic_write(paths[0], lambda tmp: torch.save(state, tmp))
        atomic_write(paths[1], lambda tmp: Path(tmp).write_text(json.dumps(info, indent=2) + "\n"))
        atomic_write(paths[2], lambda tmp: Path(tmp).write_text(card))
    except OSError as exc:
        raise UserError(f"cannot write {folder}: {exc.strerror or exc}") from None
    return paths


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a checkpoint of ours (epochN.pt)")
    p.add_argument("--name", required=True, help="the model's name in RobustBench's layout (e.g. Me2026PART_R18)")
    p.add_argument("--out", default="data/robustbench", help="RobustBench's model folder (its load_model's model_dir; the default is --zoo-dir's, ignored by git)")
    p.add_argument("--results", default=None, help="the run's results JSON (default: results.json beside it)")
    p.add_argument("--authors", default="", help="model_info's authors")
    p.add_argument("--link", default="", help="model_info's link (the paper or the checkpoint's page)")
    p.add_argument("--venue", default="", help="model_info's venue")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier export of the same name")
    a = p.parse_args(argv)
    try:
        for path in export(a.checkpoint, a.name, a.out, a.results, a.authors, a.link, a.venue, a.overwrite):
            print(path)
    except UserError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
