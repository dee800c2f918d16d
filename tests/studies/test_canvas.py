"""The positive control's pieces: CIFAR-10 on a canvas with each object's box, the random maps
on their own stream, --eval map-info (information and localisation of any map), and the code a run
records at its start and at each resume."""
import json

import numpy as np
import pytest
import torch
from torch import nn

from cam.maps import MAPS, importance_map
from cam.rules import top_pixels
from tests.conftest import tiny_argv
from runner.cli.args import get_args
from runner.data import canvas
from runner.data.sources import load_splits
from runner.evaluation import EvalSettings


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PART_DATA_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_the_canvas_holds_each_image_shrunk_inside_its_box_on_clutter_of_other_images(tiny_zip, tiny_splits, cache):
    train, test = load_splits("CIFAR10-canvas", tiny_zip)
    images, labels = tiny_splits["test"]
    order = np.argsort(labels, kind="stable")         # the zip's tree lists the images class by class
    assert test.images.shape == (40, 32, 32, 3) and np.array_equal(test.labels, labels[order])
    boxes = test.extras["box"]
    assert ((boxes[:, 2] - boxes[:, 0]) == 24).all() and ((boxes[:, 3] - boxes[:, 1]) == 24).all()
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= 32).all() and len({tuple(b[:2]) for b in boxes}) > 5
    source = load_splits("CIFAR10", tiny_zip)[1].images
    shrunk = canvas.shrink(source, 24)
    for i, (t, l, b, r) in enumerate(boxes):
        assert np.array_equal(test.images[i, t:b, l:r], shrunk[i])
        outside = np.ones((32, 32), bool)
        outside[t:b, l:r] = False
        # every clutter pixel is a pixel of one of the other images
        other = np.delete(source, i, axis=0).reshape(-1, 3)
        px = test.images[i][outside][:20]
        assert all((other == p).all(1).any() for p in px)
    assert test.source["layout"] == "canvas" and test.source["from"]["layout"] == "zip"
    # cached, and the same canvas from the cache
    assert len(list(cache.glob("cifar10-canvas-*.npz"))) == 2
    again = load_splits("CIFAR10-canvas", tiny_zip, train_subset=20)[0]
    assert np.array_equal(again.images, train.subset(20).images)
    assert np.array_equal(again.extras["box"], train.subset(20).extras["box"])


def test_the_studys_share_is_the_boxs():
    from experiments.runs import CANVAS_SHARE
    assert CANVAS_SHARE == (canvas.OBJECT / canvas.CANVAS) ** 2


def test_the_canvas_is_a_function_of_the_images_alone(tiny_splits):
    images = tiny_splits["train"][0]
    a, boxes_a = canvas.make_canvas(images, 0)
    b, boxes_b = canvas.make_canvas(images.copy(), 0)
    assert np.array_equal(a, b) and np.array_equal(boxes_a, boxes_b)
    c, _ = canvas.make_canvas(images, 1)          # the other split's stream
    assert not np.array_equal(a, c)


def _boxes(n: int, size: int = 32, side: int = 24) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    corner = torch.randint(0, size - side + 1, (n, 2), generator=g)
    return torch.cat([corner, corner + side], 1)


def test_the_inverse_box_map_takes_the_outside_then_random_box_pixels():
    x, boxes = torch.rand(6, 3, 32, 32), _boxes(6)
    noise = torch.rand(6, 32, 32)
    inv = importance_map("inverse-box", None, x, None, {"box": boxes}, noise)
    box = importance_map("box", None, x, None, {"box": boxes}).bool()
    top = top_pixels(inv[:, None], 0.5625)[:, 0]
    assert (top.flatten(1).sum(1) == 576).all()
    assert (top | box).all()                              # all 448 outside pixels
    assert ((top & box).flatten(1).sum(1) == 128).all()   # and 128 of the box
    chosen = (top & box)[0]
    expect = torch.zeros(32, 32, dtype=torch.bool)
    inside = box[0].flatten().nonzero()[:, 0]
    expect.view(-1)[inside[noise[0].flatten()[inside].topk(128).indices]] = True
    assert torch.equal(chosen, expect)                    # the box pixels of highest noise: the caller's draw


def test_a_map_that_draws_refuses_to_run_without_its_noise():
    with pytest.raises(ValueError, match="draws"):
        importance_map("random", None, torch.rand(2, 3, 8, 8))
    assert {n for n, m in MAPS.items() if m.draws} == {"random", "inverse-box"}


@pytest.mark.parametrize("evaluation", ["counts", "map_info_counts"])
def test_cam_info_with_a_map_that_draws_gives_it_a_draw_of_its_own(evaluation):
    """Under per-image seeding a draw is keyed by its index: the map's noise must not share one with a
    set or an attack start (it did: the random map's noise was the fourth start's first channel)."""
    from studies import cam_info
    asked = []

    def draw(k, shape):
        asked.append(k)
        return torch.rand(shape)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 10)).eval()
    args = get_args("part", ["--cam", "random", "--eval", "natural,cam-info,map-info", "--info-maps", "random",
                             "--cam-info-share", "0.25"])
    x = torch.rand(2, 3, 8, 8)
    getattr(cam_info, evaluation)(model, x, torch.tensor([1, 2]), EvalSettings.from_args(args), draw)
    assert len(asked) == len(set(asked))


def _record_eps(monkeypatch):
    import runner.training.trainer as trainer
    seen = []
    real = trainer.train_batch

    def spy(phase, model, x, y, optimizer, extras=None, **kw):
        before = torch.random.get_rng_state()
        loss, eps = real(phase, model, x, y, optimizer, extras, **kw)
        seen.append((phase.name, eps if phase.name == "part" else None, before))
        return loss, eps
    monkeypatch.setattr(trainer, "train_batch", spy)
    return seen


def test_the_random_map_draws_its_own_stream_not_the_training_rng(tiny_folder, tmp_path, monkeypatch):
    """The random map's arm sees the training RNG exactly as the CAM's arm of the same seed (same
    state before every batch), its masks differ from batch to batch and repeat in a second run."""
    from runner.training.run import run
    argv = [*tiny_argv(tiny_folder, tmp_path / "a"), "--model", "smallcnn-bn", "--mask-rule", "top", "--top-share",
            "0.25", "--threads", "1"]
    seen = _record_eps(monkeypatch)
    run(get_args("part", [*argv, "--map", "random"]))
    random_arm = list(seen)
    seen.clear()
    run(get_args("part", [*argv, "--map", "gradcam", "--model-dir", str(tmp_path / "b")]))
    cam_arm = list(seen)
    assert [torch.equal(a[2], b[2]) for a, b in zip(random_arm, cam_arm)] == [True] * len(cam_arm)
    part = [e for name, e, _ in random_arm if name == "part"]
    assert len(part) >= 2 and not torch.equal(part[0][:len(part[1])], part[1][:len(part[0])])
    assert all(((e == 8 / 255).flatten(1).float().mean(1) == 0.25).all() for e in part)
    seen.clear()
    run(get_args("part", [*argv, "--map", "random", "--model-dir", str(tmp_path / "c")]))
    again = [e for name, e, _ in seen if name == "part"]
    assert all(torch.equal(a, b) for a, b in zip(part, again))


def test_map_info_measures_the_box_maps_exactly(tmp_path, monkeypatch):
    """On images with boxes: the box map points inside every box with IoU 1, the inverse box at the
    share 0.5625 has IoU 128 / 1024, a random map points inside as often as chance allows; the random
    set is one for every map, and each set's attack reads exactly its pixels."""
    from studies import cam_info
    from models.zoo import build_model
    torch.manual_seed(0)
    model = build_model("smallcnn-bn", 10).eval()
    x, y, boxes = torch.rand(16, 3, 32, 32), torch.randint(0, 10, (16,)), _boxes(16)
    s = EvalSettings(8 / 255, 2 / 255, None, "batch", "gradcam", 7 / 255,
                     {"cam_info_share": 0.5625, "info_maps": ("box", "inverse-box", "random", "gradcam")})
    budgets = []
    real = cam_info.pgd
    monkeypatch.setattr(cam_info, "pgd", lambda m, x, y, eps, *a, **k: (budgets.append(eps), real(m, x, y, eps, *a, **k))[1])
    columns = cam_info.map_info_counts(model, x, y, s, extras={"box": boxes})
    res = cam_info.map_info_summary(columns, 16, cam_info.maps_of(s), cam_info.share_of(s), True)["maps"]
    assert res["box"]["pointing"] == 100 and res["box"]["iou"] == pytest.approx(1.0)
    assert res["inverse-box"]["pointing"] == 0 and res["inverse-box"]["iou"] == pytest.approx(128 / 1024)
    assert 0 < res["random"]["iou"] < 0.6
    box = importance_map("box", None, x, None, {"box": boxes}).bool()
    assert len(budgets) == 1 + 2 * 4
    assert torch.equal(budgets[1][:, 0] > 0, box)                   # the box map's top share: the box
    bottom = budgets[2][:, 0] > 0                                   # its bottom share: the outside, then
    assert (bottom | box).all() and ((bottom & box).flatten(1).sum(1) == 128).all()   # box pixels at random
    assert all(((b[:, 0] > 0).flatten(1).sum(1) == 576).all() for b in budgets)


def test_map_info_from_the_command_line_and_its_refusals(tiny_folder, tmp_path, capsys):
    from runner.training.run import run
    res = run(get_args("part", [*tiny_argv(tiny_folder, tmp_path / "r"), "--eval", "natural,map-info",
                                "--info-maps", "gradcam,gradient", "--cam-info-share", "0.3", "--threads", "1"]))
    info = res["map-info"]
    assert set(info["maps"]) == {"gradcam", "gradient"} and "pointing" not in info["maps"]["gradcam"]
    assert info["maps"]["gradient"]["random - top"] == pytest.approx(info["random"] - info["maps"]["gradient"]["top"])
    for argv, message in ((["--eval", "natural,map-info", "--info-maps", "box"], "needs a dataset whose images"),
                          (["--info-maps", "gradcam"], "--info-maps needs --eval map-info"),
                          (["--eval", "map-info", "--info-maps", "gradcam,nope"], "invalid --info-maps")):
        with pytest.raises(SystemExit) as exc:
            get_args("part", argv)
        assert exc.value.code == 2 and message in capsys.readouterr().err


def test_a_run_records_the_commit_it_started_at_and_each_resumes(tiny_folder, tmp_path, monkeypatch):
    import runner.training.resume as resume
    import runner.training.trainer as trainer
    from runner.training.run import run
    monkeypatch.setattr(trainer, "git_commit", lambda: "a" * 40)
    argv = [*tiny_argv(tiny_folder, tmp_path / "m"), "--epochs", "1", "--warm-up", "1", "--train-subset", "48",
            "--results", str(tmp_path / "r.json")]
    run(get_args("part", argv))
    monkeypatch.setattr(trainer, "git_commit", lambda: "b" * 40)
    monkeypatch.setattr(resume, "git_commit", lambda: "c" * 40)
    res = run(get_args("part", [*argv[:-2], "--epochs", "2", "--resume", "auto", "--results", str(tmp_path / "s.json")]))
    assert res["started"]["git_commit"] == "a" * 40
    assert [r["git_commit"] for r in res["resumes"]] == ["c" * 40]
    monkeypatch.setattr(trainer, "git_commit", lambda: "d" * 40)       # an evaluation of the weights, later
    ev = run(get_args("part", ["--eval-only", str(tmp_path / "m" / "epoch2.pt"), "--eval", "natural", "--results",
                               str(tmp_path / "e.json"), "--data-dir", str(tiny_folder), "--no-progress"]))
    assert ev["started"]["git_commit"] == "a" * 40 and [r["git_commit"] for r in ev["resumes"]] == ["c" * 40]
    data = json.loads((tmp_path / "s.json").read_text())["data"]
    full = load_splits("CIFAR10", tiny_folder, train_subset=48)[0]
    import hashlib
    assert data["train_indices_sha256"] == hashlib.sha256(full.indices.astype(np.int64).tobytes()).hexdigest()


def test_road_is_the_grad_cam_packages_metric_of_the_same_maps():
    from pytorch_grad_cam.metrics.road import ROADCombined
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    from cam.rules import cam_upsampled
    from studies import cam_info
    from models.zoo import build_model
    torch.manual_seed(0)
    model = build_model("smallcnn-bn", 10).eval()
    x, y = torch.rand(8, 3, 32, 32), torch.randint(0, 10, (8,))
    s = EvalSettings(8 / 255, 2 / 255, None, "batch", "gradcam", 7 / 255, {"cam_info_share": 0.5, "info_maps": ("gradient",)})
    torch.manual_seed(5)
    ours = cam_info.road_sums(model, x, y, s)
    torch.manual_seed(5)
    grad = cam_upsampled(importance_map("gradient", model, x, y), 32)[:, 0]
    ranks = cam_info.rank_map(grad, torch.rand(grad.shape))
    theirs = ROADCombined(percentiles=list(cam_info.ROAD_PERCENTILES))(
        x, ranks.numpy(), [ClassifierOutputSoftmaxTarget(int(c)) for c in y], model)
    assert ours == [pytest.approx(float(theirs.sum()), abs=1e-6)]
    # the ranks keep the map's order and break its ties: a box's top 56.25 % by rank is the box
    assert ((ranks.flatten(1).argsort(1) == grad.flatten(1).argsort(1)).float().mean() > 0.99)
    boxes = _boxes(8)
    box = importance_map("box", None, x, None, {"box": boxes})
    r = cam_info.rank_map(box, torch.rand(box.shape))
    assert (r.flatten(1).sort(1).values == torch.arange(1024) / 1024).all()
    assert torch.equal(r >= 448 / 1024, box.bool())


def test_the_reports_statistics():
    from report.groups import detectable_effect, holm, t_p_value
    from scipy import stats
    assert holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    d = [0.1, -0.2, 0.3, 0.25, 0.0]
    assert t_p_value(d) == pytest.approx(stats.ttest_1samp(d, 0).pvalue)
    # a paired t-test with 8 pairs detects d = 1.15 standard deviations with 80 % power (Cohen's tables)
    assert detectable_effect(1.0, 8) == pytest.approx(1.15, abs=0.01)
    effect = detectable_effect(0.3, 6)
    nc = effect / (0.3 / 6 ** 0.5)
    assert stats.nct.sf(stats.t.ppf(0.975, 5), 5, nc) == pytest.approx(0.8, abs=1e-3)


def _fake_run(natural: float, pgd: float, aa: float, seed: int, box_gap: float = 2.0) -> dict:
    maps = {m: {"top": 20.0, "bottom": 24.0, "random - top": box_gap if m == "box" else 0.5, "bottom - top": 4.0,
                "pointing": 90.0, "iou": 0.6} for m in ("gradcam", "gradient", "box")}
    return {"natural": natural, "pgd20": pgd, "aa-standard": aa, "args": {"seed": seed},
            "map-info": {"share": 0.5625, "random": 22.0, "maps": maps},
            "history": [{"epoch": e, "phase": "warm-up", "loss": 2.0 - e / 10, "lr": 0.05} for e in (1, 2, 3)],
            "seconds": {"train": 60.0}, "machine": {"cpu": "cpu", "threads": 1}, "started": {"git_commit": "abc1234"}}


def test_round3_report_pairs_arms_by_seed_with_holm_and_power(tmp_path):
    from report import round3
    r3, r2 = tmp_path / "r3", tmp_path / "r2"
    r3.mkdir()
    r2.mkdir()
    for seed in (1, 2, 3):
        for arm, shift in (("at", 0.0), ("uniform", 1.0), ("box", 1.5 + 0.1 * seed), ("inverse", 0.2)):
            run = _fake_run(30 + shift, 20 - shift / 2, 16, seed)
            (r3 / f"{arm}_seed{seed}.json").write_text(json.dumps(run))
    text = round3.report(r3, r2)
    assert "| 30.00 | 20.00 | 16.00 | 20.00 | 22.00 | 24.00 | +2.00 | yes |" in text        # the pilot passes
    row = next(line for line in text.splitlines() if line.startswith("| box − inverse box: natural"))
    assert "| 3 | +1.50 [+1.25, +1.75] * |" in row           # 1.4, 1.5, 1.6 over three seeds
    assert "box − uniform 6.25/255: PGD-20" in text and "Holm p" in text
    assert "| box | 3 | 31.70 ± 0.10 | 19.15 ± 0.05 | 16.00 ± 0.00 |" in text      # the arm means over seeds


def test_round3_report_shows_the_cifar_gradient_arm_beside_round_2s_runs_of_its_seeds(tmp_path):
    from report import round3
    r3, r2 = tmp_path / "r3", tmp_path / "r2"
    r3.mkdir()
    r2.mkdir()
    for seed in (1, 2, 3):
        (r2 / f"part_paper_seed{seed}.json").write_text(json.dumps(_fake_run(40 + seed, 25, 21, seed)))
    for seed in (1, 2):
        (r3 / f"cifar_gradient_seed{seed}.json").write_text(json.dumps(_fake_run(40.5 + seed, 25.5, 21, seed)))
    text = round3.report(r3, r2)
    assert "seed 1: identical; seed 2: identical" in text                        # the warm-ups match
    assert "| PART (paper rule) (round 2) | 41.00 / 25.00 / 21.00 | 42.00 / 25.00 / 21.00 |" in text   # seed 3 left out
    assert "| PART, input gradient (round 3) | 41.50 / 25.50 / 21.00 | 42.50 / 25.50 / 21.00 |" in text
    row = next(line for line in text.splitlines() if line.startswith("| gradient − PART (paper rule): natural"))
    assert "| 2 | +0.50 at every seed (no interval) | – |" in row                  # both seeds +0.50
    assert "Off the budget's own trade-off on CIFAR-10" not in text              # no AT and uniform: no line
    for seed in (1, 2):                                                      # PGD-20 on the line 26 − (natural − 40) / 2
        (r2 / f"at_seed{seed}.json").write_text(json.dumps(_fake_run(40, 26, 21, seed)))
        (r2 / f"uniform_clean_seed{seed}.json").write_text(json.dumps(_fake_run(42, 25, 21, seed)))
    lines = round3.report(r3, r2).splitlines()
    assert next(x for x in lines if x.startswith("| PART, input gradient: PGD-20 |")).startswith(
        "| PART, input gradient: PGD-20 | 2 | +0.50 [")                      # 0.25 and 0.75 above the line
    assert next(x for x in lines if x.startswith("| PART (paper rule): PGD-20 |")).startswith(
        "| PART (paper rule): PGD-20 | 2 | -0.25 [")                         # seeds 1, 2 only: −0.5 and 0


def test_round3_report_measures_each_arm_against_the_budgets_own_trade_off():
    """The frontier is the least-squares line through AT and the two uniform arms of a seed: an arm on it
    scores 0, an arm 0.5 points above it +0.5, wherever its natural accuracy lies on the line."""
    from report import round3
    line = lambda nat: 40 - 0.5 * nat                                    # noqa: E731 (robust accuracy on the frontier)
    seed = {a: {"natural": nat, "pgd20": line(nat)} for a, nat in (("at", 30.0), ("uniform", 34.0), ("uniform7", 31.0))}
    seed["box"] = {"natural": 32.5, "pgd20": line(32.5)}
    seed["inverse"] = {"natural": 36.0, "pgd20": line(36.0) + 0.5}       # beyond uniform: extrapolated
    assert round3.frontier_residual(seed, "box", "pgd20") == pytest.approx(0.0)
    assert round3.frontier_residual(seed, "inverse", "pgd20") == pytest.approx(0.5)
    assert round3.frontier_residual(seed, "cam", "pgd20") is None
    assert round3.frontier_residual({**seed, "box": {"natural": None, "pgd20": 20.0}}, "box", "pgd20") is None
    flat = {a: {"natural": 30.0, "pgd20": 20.0} for a in ("at", "uniform")}
    assert round3.frontier_residual({**flat, "box": seed["box"]}, "box", "pgd20") is None   # no slope from one x
    seed["uniform7"]["pgd20"] += 0.3                                     # a frontier point off the line: numpy's fit
    slope, intercept = np.polyfit([30.0, 34.0, 31.0], [seed[a]["pgd20"] for a in ("at", "uniform", "uniform7")], 1)
    assert round3.frontier_residual(seed, "box", "pgd20") == pytest.approx(line(32.5) - (intercept + slope * 32.5))
    assert round3.frontier_residual(seed, "box", "pgd20") < -0.05


def test_the_line_checks_read_each_variant_and_calibrate_with_an_arm_above_the_line():
    """The calibration arm 1 point above a linear frontier is +1.00 under the linear, uniform-only,
    quadratic and start-matched lines; the AA distance at AA's own images reads natural accuracy from the
    log; a variant whose anchor is missing (no uniform8) gives no interval."""
    from report import round3
    line = lambda nat: 40 - 0.5 * nat                                    # noqa: E731
    runs = {}
    for s, shift in ((1, 0.0), (2, 0.4), (3, -0.3)):
        points = {"at": 30.0 + shift, "uniform": 34.0 + shift, "uniform7": 31.0 + shift, "uniform8": 29.5 + shift,
                  "at_more": 31.5 + shift, "box": 32.0 + shift}
        for arm, nat in points.items():
            above = 1.0 if arm == "at_more" else 0.0
            runs.setdefault(arm, {})[s] = {"natural": nat, "pgd20": line(nat) + above,
                                           "aa-standard": line(nat) + above, "natural_aa": nat}
    text = "\n".join(round3.line_checks(runs))
    row = next(x for x in text.splitlines() if x.startswith("| AT on 12,500 images (calibration): PGD-20 |"))
    assert row.count("+1.00 [+1.00, +1.00]") == 4 and "| – |" in row          # AA's own images: PGD-20 has none
    assert "AT on 12,500 images (calibration): PGD-20 +1.00 [+1.00, +1.00] over 3 seeds, seen" in text
    del runs["uniform8"]
    row = next(x for x in "\n".join(round3.line_checks(runs)).splitlines()
               if x.startswith("| box: PGD-20 |"))
    assert row.split(" | ")[3] == "–"                                          # start-matched needs uniform8


def test_the_calibration_arms_and_the_anchor_pair_with_at_by_seed():
    from report import round3
    runs = {"at": {s: {"natural": 30.0 + s, "pgd20": 20.0, "aa-standard": 17.0} for s in (1, 2, 3)},
            "uniform8": {s: {"natural": 30.0 + s + d, "pgd20": 20.0 - d, "aa-standard": 17.0 + 2 * d}
                         for s, d in ((1, 0.1), (2, 0.3), (3, 0.2))}}
    rows = [x for x in round3.against_at(runs) if x.startswith("| uniform 8/255")]
    assert [r.split(" | ")[2] for r in rows] == ["+0.20 [-0.05, +0.45]", "-0.20 [-0.45, +0.05]",
                                                 "+0.40 [-0.10, +0.90]"]         # paired: t(2) on SD 0.1
    assert all(r.split(" | ")[1] == "3" for r in rows)
    assert round3.against_at({"at": runs["at"]}) == []
    assert round3.against_at({"at": runs["at"], "uniform8": {1: runs["uniform8"][1]}}) == []   # one seed


def test_round3_load_reads_natural_accuracy_on_the_autoattack_images_from_the_log(tmp_path):
    from report import round3
    (tmp_path / "box_seed1.json").write_text(json.dumps({"natural": 30.0}))
    (tmp_path / "box_seed1.log").write_text("PGD=====\nTest: Accuracy: 611/2000 (30.55%)\nAA-standard======\n"
                                            "Test: Accuracy: 148/500 (29.60%), Robust Accuracy: 89/500 (17.80%)\n")
    assert round3.load(tmp_path)["box"][1]["natural_aa"] == pytest.approx(29.6)


def test_round3_report_reads_the_masking_checks_per_arm_and_pairs_them_by_seed(tmp_path):
    """Two seeds of the gradient and paper-rule arms: their mean accuracies per attack, the gradient − paper
    rule difference under each attack, and each arm's PGD-20 − worst gap."""
    from report import round3
    (tmp_path / "masking").mkdir()
    # seed -> arm -> (PGD-20, worst); every other attack 20 + (seed − 1) for both arms
    runs = {1: {"cifar_gradient": (26.0, 20.0), "part_paper": (25.0, 20.5)},
            2: {"cifar_gradient": (27.5, 21.0), "part_paper": (26.0, 22.0)}}
    for seed, arms in runs.items():
        for arm, (pgd20, worst) in arms.items():
            acc = {k: 19.0 + seed for k, _ in round3.MASKING_ATTACKS}
            acc.update(pgd20=pgd20, worst=worst)
            (tmp_path / "masking" / f"{arm}_seed{seed}.json").write_text(json.dumps({"accuracy": acc, "images": 500}))
    # A seed not every arm has been checked on yet is left out of every row.
    (tmp_path / "masking" / "part_paper_seed3.json").write_text(json.dumps(
        {"accuracy": {k: 90.0 for k, _ in round3.MASKING_ATTACKS}, "images": 500}))
    lines = round3.masking(tmp_path)
    row = lambda label: next(x for x in lines if x.startswith(f"| {label} |"))        # noqa: E731
    assert row("PART, input gradient").startswith("| PART, input gradient | 2 | 26.75 |")
    assert row("PART (paper rule)").startswith("| PART (paper rule) | 2 | 25.50 |")
    assert row("input gradient − paper rule: PGD-20").startswith(
        "| input gradient − paper rule: PGD-20 | 2 | +1.25 [")
    assert row("PART (paper rule): PGD-20 − worst").startswith("| PART (paper rule): PGD-20 − worst | 2 | +4.25 [")
    # The gap against AT's on the same seed (AT: PGD-20 24 + seed, worst 20 + seed: a gap of 4 at each seed).
    for seed in (1, 2):
        acc = {k: 19.0 + seed for k, _ in round3.MASKING_ATTACKS}
        acc.update(pgd20=24.0 + seed, worst=20.0 + seed)
        (tmp_path / "masking" / f"at_seed{seed}.json").write_text(json.dumps({"accuracy": acc, "images": 500}))
    lines = round3.masking(tmp_path)
    assert row("PART, input gradient − AT: PGD-20 − worst").startswith(
        "| PART, input gradient − AT: PGD-20 − worst | 2 | +2.25 [")
    # transfer (19 + seed) − PGD-20 (26, 27.5): −6, −6.5
    assert row("PART, input gradient: transfer − PGD-20").startswith(
        "| PART, input gradient: transfer − PGD-20 | 2 | -6.25 [")
    # Both seeds alike: the difference, no interval.
    assert row("input gradient − paper rule: APGD-CE") == \
        "| input gradient − paper rule: APGD-CE | 2 | +0.00 at every seed (no interval) | – | – | – |"
    assert round3.masking(tmp_path / "none")[-1].endswith("not run yet.")


def test_round3_intervals_give_no_interval_where_every_seed_differs_alike():
    """Seeds that all differ by the same amount (up to the float error of differences of percentages) give
    that amount, no interval and no p, and stay out of the Holm family; one seed gives no row."""
    from report.round3 import interval_cells
    from report.groups import t_p_value
    rows = [("alike", [25.4 - 25.6, 24.6 - 24.8]), ("varies", [1.0, 2.0, 4.0]), ("one seed", [1.0])]
    alike, varies = interval_cells(rows)
    assert alike == ["alike", "2", "-0.20 at every seed (no interval)", "–", "–", "–"]
    p = f"{t_p_value([1.0, 2.0, 4.0]):.3f}"
    assert varies[0] == "varies" and varies[3] == varies[4] == p            # Holm over a family of one


def test_round3_report_replays_the_gradient_arms_gain_on_the_retrained_models():
    """The retrained pair's PGD-20 difference beside the rounds' pair of the same seeds, their difference (the
    replication), and a seed only one retrained arm has left out of every row."""
    from report import round3
    run = lambda natural, pgd20: {"natural": natural, "pgd20": pgd20}                    # noqa: E731
    runs3 = {"masking_cifar_gradient": {1: run(41.0, 25.5), 2: run(40.0, 25.0), 3: run(50.0, 50.0)},
             "masking_part_paper": {1: run(41.0, 25.0), 2: run(40.5, 24.0)},
             "cifar_gradient": {1: run(41.0, 26.0), 2: run(40.0, 25.0), 3: run(41.0, 25.0)},
             "masking_at": {1: run(40.0, 25.0), 2: run(40.0, 24.0)}}
    runs2 = {"part_paper": {1: run(41.0, 25.0), 2: run(40.0, 24.5)}, "at": {1: run(40.0, 25.5), 2: run(40.0, 24.0)}}
    lines = round3.masking_replication(runs3, runs2)
    row = lambda label: next(x for x in lines if x.startswith(f"| {label} |"))        # noqa: E731
    # retrained: +0.5, +1.0; the rounds': +1.0, +0.5; replication: −0.5, +0.5
    assert row("retrained: input gradient − paper rule: PGD-20").startswith(
        "| retrained: input gradient − paper rule: PGD-20 | 2 | +0.75 [")
    assert row("rounds 2 and 3, the same seeds: input gradient − paper rule: PGD-20").startswith(
        "| rounds 2 and 3, the same seeds: input gradient − paper rule: PGD-20 | 2 | +0.75 [")
    assert row("retrained − rounds 2 and 3: the PGD-20 gain (input gradient − paper rule)").startswith(
        "| retrained − rounds 2 and 3: the PGD-20 gain (input gradient − paper rule) | 2 | +0.00 [")
    assert row("retrained − the round's own, AT: PGD-20").startswith(
        "| retrained − the round's own, AT: PGD-20 | 2 | -0.25 [")
    assert round3.masking_replication({}, runs2) == []


def test_round3_report_gives_each_maps_range_over_the_arms_means():
    """bottom − top per run, averaged per arm; each map's range (min–max) over the arms' means."""
    from report import round3
    info = lambda top, bottom: {"random": 30.0, "maps": {"gradcam": {"pointing": 99.0, "iou": 0.6, "top": top,  # noqa: E731
                                                                      "bottom": bottom, "random - top": 30.0 - top}}}
    runs = {"at": {1: {"map-info": info(20.0, 25.0)}, 2: {"map-info": info(22.0, 26.0)}},       # 5, 4 -> 4.50
            "box": {1: {"map-info": info(21.0, 28.0)}}}                                           # 7
    lines = round3.localisation(runs)
    assert next(x for x in lines if x.startswith("| AT | gradcam |")).endswith("| 9.00 | 4.50 |")
    assert "| gradcam | 99.00–99.00 | 0.60–0.60 | 9.00–9.00 | 4.50–7.00 |" in lines


def test_round3_report_costs_runs_from_their_seconds_with_machine_and_commit():
    """Run time summed from each run's `seconds` (training and evaluation), a lone run given as such."""
    from report import round3
    run = lambda secs, commit: {"seconds": {"train": secs - 60.0, "eval": 60.0},                  # noqa: E731
                                "machine": {"cpu": "AMD EPYC", "threads": 1}, "started": {"git_commit": commit * 8}}
    runs = {"at": {1: run(600.0, "a"), 2: run(1200.0, "b")}, "box": {1: run(1800.0, "a")}}
    assert round3.cost(runs)[-1] == ("Cost: 3 runs, each 10.0–30.0 min (median 20.0), 1.0 h summed; machines: "
                                     "AMD EPYC, 1 thread(s); started at commits aaaaaaa, bbbbbbb.")
    assert round3.cost({"box": runs["box"]}, "Of them, box")[-1].startswith("Of them, box: 1 run, 30.0 min; ")
    assert round3.cost({"none": {}}) == []
