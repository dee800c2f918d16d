"""The controls of PART's placement and the measure of the CAM's information: the paper's rule at a
fixed share (--mask-rule top), the region rule's attack start (--region-start), --eval cam-info, and
the runner's second round of the CPU-scale study."""
import dataclasses
import shlex
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn

from tests.conftest import train
from runner.cli.args import get_args
from runner.evaluation import EvalSettings

EPS, LOW = 8 / 255, 7 / 255


@pytest.mark.parametrize("share", [0.2176, 0.5, 0.01])
def test_top_rule_keeps_epsilon_on_exactly_the_highest_cam_pixels(share):
    from cam.rules import cam_upsampled, epsilon_map
    torch.manual_seed(0)
    cam = torch.rand(5, 8, 8)
    s = SimpleNamespace(epsilon=EPS, low_epsilon=LOW, mask_rule="top", rule_params={"top_share": share})
    eps = epsilon_map(s, cam, torch.zeros(5, 3, 32, 32))
    k = round(share * 32 * 32)
    full = eps == EPS
    assert torch.equal(full[:, 0], full[:, 1]) and torch.equal(full[:, 0], full[:, 2])     # per pixel
    assert full[:, 0].flatten(1).sum(1).tolist() == [k] * 5                                  # exactly k pixels
    up = cam_upsampled(cam, 32)[:, 0]
    for b in range(5):                      # monotone: every chosen pixel's CAM >= every other's
        assert up[b][full[b, 0]].min() >= up[b][~full[b, 0]].max()
    assert set(eps.unique().tolist()) == {torch.tensor(EPS).item(), torch.tensor(LOW).item()}


def test_top_and_region_start_flags():
    assert get_args("part", ["--mask-rule", "top", "--top-share", "0.2"]).top_share == 0.2
    assert get_args("part", ["--mask-rule", "region"]).region_start == "map"
    for argv in (["--mask-rule", "top"], ["--top-share", "0.2"], ["--mask-rule", "top", "--top-share", "1"],
                 ["--region-start", "epsilon"], ["--mask-rule", "region", "--region-start", "half"]):
        with pytest.raises(SystemExit):
            get_args("part", argv)


def test_top_rule_trains_at_its_share(tiny_folder, tmp_path):
    res = train(tiny_folder, tmp_path / "r", "--mask-rule", "top", "--top-share", "0.25", "--eval", "natural")
    assert res["method"] == "PART" and res["history"][1]["full_budget_fraction"] == pytest.approx(256 / 1024)


def test_region_start_spans_the_map_or_epsilon(tiny_folder, tmp_path, monkeypatch):
    """--region-start epsilon starts the attack in +-epsilon (PART's start), map in the region map."""
    import part.step as step
    radii = []
    real_phase = step.phase

    def spied_phase(name, s, base, reweighted):
        """The phase the trainer builds, its attack's start function wrapped to record the radius."""
        built = real_phase(name, s, base, reweighted)
        start = built.attack_settings["start"]

        def spy(x, radius, noise=None):
            radii.append((name, radius))
            return start(x, radius, noise)
        return dataclasses.replace(built, attack_settings={**built.attack_settings, "start": spy})
    monkeypatch.setattr(step, "phase", spied_phase)
    region = ["--mask-rule", "region", "--region-eps", "ul=7/255,ur=7/255,bl=7/255,br=7/255", "--eval", "natural"]
    res = {}
    for start in ("map", "epsilon"):
        radii.clear()
        res[start] = train(tiny_folder, tmp_path / start, *region, "--region-start", start)
        name, part = radii[-1]     # the last training batch's start (the PART phase)
        assert name == "part"
        if start == "map":
            assert torch.is_tensor(part) and part.max().item() == pytest.approx(7 / 255)
        else:
            assert part == pytest.approx(EPS)
    assert res["map"]["history"][1]["loss"] != res["epsilon"]["history"][1]["loss"]


class QuadrantLinear(nn.Module):
    """A classifier that reads only the upper-left 16x16 quadrant (features/head for the CAM)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.w = nn.Linear(3 * 16 * 16, 10)

    def forward(self, x):
        return self.w(x[:, :, :16, :16].flatten(1))


def test_cam_info_tells_the_pixels_that_matter_from_the_others(monkeypatch):
    """With a CAM that points at the only pixels the model reads, attacking the CAM's top share breaks
    it, its bottom share cannot, a random share lies between."""
    from studies import cam_info
    model = QuadrantLinear().eval()
    cam = torch.zeros(64, 8, 8)
    cam[:, :4, :4] = 1.0                     # the upper-left quadrant (bilinear-upsampled: inside it)
    monkeypatch.setattr(cam_info, "importance_map", lambda name, m, x, y=None, extras=None, noise=None: cam[:len(x)])
    torch.manual_seed(0)
    x = torch.rand(64, 3, 32, 32)
    y = model(x).argmax(1)                   # clean accuracy 100 %
    args = EvalSettings.from_args(get_args("part", ["--eval", "cam-info", "--cam-info-share", "0.2"]))
    counts = cam_info.counts(model, x, y, args)
    top, rand, bottom = counts[:3]
    assert bottom == 64 and top < rand < bottom
    maps = cam_info.budgets(model, x, y, args)
    k = round(0.2 * 1024)
    for name in ("top", "random", "bottom"):
        full = maps[name] == args.eval_epsilon
        assert full.flatten(1).sum(1).tolist() == [3 * k] * 64 and ((maps[name] == 0) | full).all()
    assert not ((maps["top"] > 0) & (maps["bottom"] > 0)).any()
    same = (maps["official"] == args.eval_epsilon).flatten(1).sum(1)
    assert torch.equal((maps["official-random"] == args.eval_epsilon).flatten(1).sum(1), same)


def test_cam_info_in_a_run_and_in_its_results(tiny_folder, tmp_path, capsys):
    res = train(tiny_folder, tmp_path / "r", "--eval", "natural,cam-info", "--threads", "1")
    info = res["cam-info"]
    assert set(info) >= {"top", "random", "bottom", "official", "official-random", "random - top", "share"}
    assert info["random - top"] == pytest.approx(info["random"] - info["top"])
    assert len(res["counts"]["cam-info"]) == 6 and res["images"]["cam-info"] == res["test_images"]
    assert "CAM-info" in capsys.readouterr().out
    assert res["machine"]["threads"] == 1 and res["machine"]["cpu"]
    assert res["machine"]["kernels"] == torch.backends.cpu.get_cpu_capability() != ""
    assert torch.get_num_threads() == 1            # (conftest puts the count back after the test)


def test_the_report_pairs_rules_and_shows_cam_info_and_figure1():
    from report import groups, tables

    def run(name, seed, argv, nat, info=None):
        return {"name": name, "method": "x", "device": "cpu", "machine": {"threads": 1},
                "args": vars(get_args("part", [*argv, "--seed", str(seed)])), "natural": nat, "pgd20": nat / 2,
                **({"cam-info": info} if info else {})}
    from part import VARIANTS
    runs = []
    for seed in (1, 2, 3):
        info = {"share": 0.2, "top": 10.0, "random": 12.0 + seed, "bottom": 15.0, "official": 11.0,
                "official-random": 11.5, "random - top": 2.0 + seed, "official-random - official": 0.5}
        for argv, nat in (([], 40.0 + seed), (["--mask-rule", "top", "--top-share", "0.2"], 41.0 + seed),
                          (["--no-reweight"], 39.0 + seed)):
            r = run(f"r{seed}", seed, argv, nat, info)
            r["method"] = VARIANTS["part"].label(r["args"]["no_reweight"], r["args"]["mask_rule"])
            runs.append(r)
        for q in ("ul", "br"):
            eps = ",".join(f"{p}={'6/255' if p == q else '12/255'}" for p in ("ul", "ur", "bl", "br"))
            r = run(f"fig{q}{seed}", seed, ["--mask-rule", "region", "--region-eps", eps, "--warm-up", "0"],
                    50.0 + (seed if q == "ul" else 0))
            r["method"] = "AT-region"
            runs.append(r)
    labels = [label.split(" − ") for _, _, label in groups.arm_pairs(runs)]
    assert any(a.startswith("PART, mask_rule=top") and b.startswith("PART, mask_rule=official") for a, b in labels)
    text = tables.markdown_table(runs)
    assert "random − top" in text and "+4.00 [" in text            # (3 + 4 + 5) / 3
    assert "at most" in text and "Figure 1" in text
    assert "- natural: ul − br +2.00 [" in text                    # seeds 1-3: +1, +2, +3
    runs[0]["machine"]["threads"] = 2         # a CPU run at another thread count is another arm
    assert len(groups.grouped(runs)) > len(groups.grouped([r for r in runs if r is not runs[0]]))


def test_round_two_of_the_study(capsys, tmp_path, monkeypatch):
    from experiments import run as runner
    from experiments.runs import STUDY_SHARE, SUITES
    study = SUITES["cpu-study-2"]
    prios = {}
    for name, (prio, _, flags) in study.items():
        prios.setdefault(prio, []).append(name)
        args = get_args("part", shlex.split(flags))
        assert args.threads == 1 and "cam-info" in args.eval and args.cam_info_share == STUDY_SHARE
    assert sorted(prios) == [1, 2, 3, 4, 11, 12, 13, 14, 25, 26, 27, 28]
    assert sorted(prios[1]) == ["at_seed1", "part_paper_seed1", "part_seed1", "random_seed1", "uniform_clean_seed1"]
    assert len(prios[11]) == 4 and all(get_args("part", shlex.split(study[n][2])).warm_up == 0 for n in prios[11])
    clean = get_args("part", shlex.split(study["uniform_clean_seed1"][2]))
    assert clean.region_start == "epsilon" and clean.region_eps["ul"] == pytest.approx((7 + STUDY_SHARE) / 255)
    assert get_args("part", shlex.split(study["part_seed5"][2])).eval == ["natural", "pgd20", "aa-standard", "cam-info"]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(runner, "source_changes", lambda: [])
    assert runner.main(["--suite", "cpu-study-2", "--priority", "11", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "results/cpu-study/round2/fig1_ul6_seed1.json" in out
    for line in out.splitlines():                  # each flag once, the run's own value
        assert line.count("--eval-every ") == 1 and line.count("--threads ") == 1


def test_runs_start_only_from_committed_source(capsys, monkeypatch, tmp_path):
    from experiments import run as runner
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(runner, "source_changes", lambda: ["runner/training/trainer.py"])
    with pytest.raises(SystemExit) as exc:
        runner.main(["at_seed1", "--data-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "runner/training/trainer.py" in err
    assert not (tmp_path / "results").exists()


def test_jobs_divide_the_cores(monkeypatch):
    from experiments import run as runner
    monkeypatch.setattr("runner.infra.provenance.cores_available", lambda: 8)
    args = runner.argparse.Namespace(suite="reproduction", checkpoint_dir="c", data_dir="d", results_dir="r",
                                     aa_subset=None, extra="", jobs=4)
    cmd = runner.command("at_seed1", args)
    assert cmd[cmd.index("--threads") + 1] == "2"
    args.extra = "--threads 3"
    cmd = runner.command("at_seed1", args)
    assert cmd.count("--threads") == 1 and cmd[cmd.index("--threads") + 1] == "3"
