"""The named runs, by suite and priority.

`reproduction` (the default suite): ResNet-18, CIFAR-10, the official schedule (80 epochs, 20 of them
warm-up, batch 128), every evaluation on the 10,000 test images: natural, PGD-20, MMA, both
AutoAttacks — torchattacks', as the official code, and the authors', as RobustBench.

`cpu-study` (issue 17): PART against AT and two controls the paper lacks, at a scale a 2-core CPU
finishes (STUDY below says what and why); priority = seed, so `--priority 1` runs one seed of every arm;
then TRADES vs PART-T (priority 5) and MART vs PART-M (priority 6) at 2 seeds.

`cpu-study-2` (issue 24, the study's second round, results/cpu-study/round2): the same setting at
1 torch thread per run (round 1 ran at 2; the thread count changes the rounding, so round 2 reruns
the arms it pairs with), every run with the cam-info evaluation:
  priority 1-4 (seed)   AT, PART (official rule), random, uniform with PART's start (+-epsilon, the
                        clean control), PART (paper rule: --mask-rule top at the study's share);
  priority 11-14        Figure 1 at CPU scale: AT with one quadrant at 6/255 and the others at 12/255,
                        each quadrant, no warm-up, natural and PGD-20 (seeds 1-4);
  priority 25-28        seeds 5-8 of the five arms, AutoAttack by its authors only (aa-standard).

`cpu-study-3` (issue 32, round 3, results/cpu-study/round3): a positive control of placement on
CIFAR10-canvas (runner/data/canvas.py: a 24x24 CIFAR-10 object at a random place on clutter, its box
known), in round 2's setting otherwise; every run with natural, PGD-20, AutoAttack by its authors and
--eval map-info (the CAM, the input gradient and the box: information and localisation):
  priority 1-4 (seed)   strong contrast, epsilon 8/255 and epsilon_low 4/255, every arm at the box's share
                        (CANVAS_SHARE): AT; uniform at the mean budget; box; inverse box; CAM (the paper's
                        rule); input gradient; random; and PART's contrast (7/255): uniform, box, CAM;
                        at_seed1 is the pilot (AT learns the canvas? does the box matter?);
  priority 11-18        on CIFAR-10 itself, round 2's setting and 1 thread: PART with the input-gradient map
                        (the paper's rule at round 2's share), seeds 1-8, paired with round 2's runs;
  priority 21-23        the ladder of the CAM's information against the model's strength: AT on 10,000
                        images x 10 epochs (round 2's at_seed1 again, with map-info), on 50,000 x 10 and
                        on 50,000 x 30 (seed 1);
  priority 25-28        seeds 5-8 of the canvas arms (where an interval that decides a question holds 0).

`cpu-study-4` (round 3's line test calibrated, results/cpu-study/round3 beside round 3's runs):
  priority 1-10         the calibration arm at_more (AT on 12,500 images: known to lie above the uniform
                        budgets' line) and the start-matched anchor uniform8 (AT's budget, the uniform arms'
                        start), seeds 1-8; at_more_seed1 is the pilot;
  priority 11-18        a second calibration arm, at_double (AT on 20,000 images), seeds 1-8;
  priority 21-28        round 2's AT and paper-rule PART and round 3's input-gradient PART on CIFAR-10
                        retrained (masking_*, natural and PGD-20), their weights for the gradient-masking check.
"""
from __future__ import annotations

from cam.rules import QUADRANTS

FIG1 = "--warm-up 0 --mask-rule region --eval natural,pgd20 --region-eps"
ALL = "--eval natural,pgd20,mma,aa,aa-standard"

# The CPU-scale study's setting, chosen so that one run takes about 10 minutes on 2 cores and AT
# clearly learns (bench/RESULTS.md, "CPU-scale study"):
# - smallcnn-bn: BatchNorm learns at 8/255 within a few epochs (the small CNN does not); channels_last
#   pays on this CPU;
# - 10,000 training images, 10 epochs, 3 of them AT warm-up (the paper's quarter), batch 32 and lr 0.05,
#   a tenth of it for the last two: on this CPU batch 32 is faster per image than 128 (2.6 vs 4.1 ms per
#   image and epoch) and gives 4x the updates (AT after 3 epochs of 5,000 images: 28 % natural, 21 %
#   PGD-20 on 500 test images);
# - natural and PGD-20 on 2,000 fixed test images, both AutoAttacks on 500 fixed ones; natural and
#   PGD-20 on 1,000 every 2 epochs for the learning curves;
# - the evaluation seeded per batch (--eval-seeding batch), the scheme its first runs were evaluated
#   with, so that every run of the study pairs with every other.
def study(evals: str = "natural,pgd20,aa,aa-standard", warm_up: int = 3) -> str:
    """The study's flags with these evaluations and warm-up epochs."""
    return ("--model smallcnn-bn --channels-last --train-subset 10000 --test-subset 2000 --aa-subset 500 "
            f"--epochs 10 --warm-up {warm_up} --adjust-first 6 --batch-size 32 --lr 0.05 --eval {evals} "
            "--eval-every 2 --eval-subset 1000 --eval-seeding batch")


STUDY = study()
STUDY_SEEDS = (1, 2, 3, 4)
# s: the share of elements that keep the full budget under PART, fixed from the PART arm of seed 1
# (the mean of its logged share over the PART epochs 4-10: 0.2176); the random arm places that share at random,
# the uniform arm gives every element the mean budget s * 8/255 + (1 - s) * 7/255.
STUDY_SHARE = 0.2176


# After the four arms: TRADES against PART-T (priority 5), MART against PART-M (priority 6).
VARIANT_PAIRS = ((5, "train_eval_part_t.py", "trades", "part_t"), (6, "train_eval_part_m.py", "mart", "part_m"))


def uniform_budget(share: float) -> str:
    """PART's mean budget at full-budget share `share`, as a fraction of 255."""
    return f"{7 + share:.4f}/255"


def _reproduction() -> dict[str, tuple[int, str, str]]:
    runs: dict[str, tuple[int, str, str]] = {}
    for seed, prio in ((1, 1), (2, 3)):
        runs[f"at_seed{seed}"] = (prio, "train_eval_part.py", f"--seed {seed} --no-reweight {ALL}")
        runs[f"part_seed{seed}"] = (prio, "train_eval_part.py", f"--seed {seed} --cam-refresh batch {ALL}")
        runs[f"part_official_pairing_seed{seed}"] = (prio, "train_eval_part.py", f"--seed {seed} --cam-refresh official {ALL}")
    runs["trades_seed1"] = (2, "train_eval_part_t.py", f"--seed 1 --no-reweight {ALL}")
    runs["part_t_seed1"] = (2, "train_eval_part_t.py", f"--seed 1 {ALL}")
    runs["mart_seed1"] = (2, "train_eval_part_m.py", f"--seed 1 --no-reweight {ALL}")
    runs["part_m_seed1"] = (2, "train_eval_part_m.py", f"--seed 1 {ALL}")
    runs["fig1_br6_seed1"] = (4, "train_eval_part.py", f"--seed 1 {FIG1} ul=12/255,ur=12/255,bl=12/255,br=6/255")
    runs["fig1_ul6_seed1"] = (4, "train_eval_part.py", f"--seed 1 {FIG1} ul=6/255,ur=12/255,bl=12/255,br=12/255")
    return runs


def _cpu_study() -> dict[str, tuple[int, str, str]]:
    u = uniform_budget(STUDY_SHARE)
    arms = {"part": "--cam-refresh batch", "at": "--no-reweight",
            "random": f"--mask-rule random --random-share {STUDY_SHARE}",
            "uniform": "--mask-rule region --region-eps " + ",".join(f"{q}={u}" for q in ("ul", "ur", "bl", "br"))}
    runs = {f"{arm}_seed{seed}": (seed, "train_eval_part.py", f"--seed {seed} {flags} {STUDY}")
            for seed in STUDY_SEEDS for arm, flags in arms.items()}
    # If time allows: each other base method against its PART variant, same setting, 2 seeds.
    for prio, script, base, variant in VARIANT_PAIRS:
        for seed in STUDY_SEEDS[:2]:
            runs[f"{base}_seed{seed}"] = (prio, script, f"--seed {seed} --no-reweight {STUDY}")
            runs[f"{variant}_seed{seed}"] = (prio, script, f"--seed {seed} --cam-refresh batch {STUDY}")
    return runs


def study2(evals: str = "natural,pgd20,aa,aa-standard,cam-info", warm_up: int = 3) -> str:
    """Round 2: the study's setting at 1 thread, with the cam-info evaluation (at the study's share)."""
    return f"{study(evals, warm_up)} --threads 1 --cam-info-share {STUDY_SHARE}"


STUDY2_EXTRA_SEEDS = (5, 6, 7, 8)
FIG1_LOW, FIG1_HIGH = "6/255", "12/255"


def study2_arms() -> dict[str, str]:
    """The five arms of round 2: name -> flags."""
    u = uniform_budget(STUDY_SHARE)
    return {"at": "--no-reweight", "part": "--cam-refresh batch",
            "random": f"--mask-rule random --random-share {STUDY_SHARE}",
            "uniform_clean": "--mask-rule region --region-start epsilon --region-eps "
                             + ",".join(f"{q}={u}" for q in QUADRANTS),
            "part_paper": f"--cam-refresh batch --mask-rule top --top-share {STUDY_SHARE}"}


def _cpu_study_2() -> dict[str, tuple[int, str, str]]:
    runs = {f"{arm}_seed{seed}": (seed, "train_eval_part.py", f"--seed {seed} {flags} {study2()}")
            for seed in STUDY_SEEDS for arm, flags in study2_arms().items()}
    fig1 = study2("natural,pgd20,cam-info", warm_up=0)
    for seed in STUDY_SEEDS:
        for low in QUADRANTS:
            eps = ",".join(f"{q}={FIG1_LOW if q == low else FIG1_HIGH}" for q in QUADRANTS)
            runs[f"fig1_{low}6_seed{seed}"] = (10 + seed, "train_eval_part.py",
                                               f"--seed {seed} --mask-rule region --region-eps {eps} {fig1}")
    more = study2("natural,pgd20,aa-standard,cam-info")
    for seed in STUDY2_EXTRA_SEEDS:
        for arm, flags in study2_arms().items():
            runs[f"{arm}_seed{seed}"] = (20 + seed, "train_eval_part.py", f"--seed {seed} {flags} {more}")
    return runs


# --- round 3: the positive control ----------------------------------------------------------------

# The box's share of the canvas: 24 x 24 of 32 x 32 pixels. Every arm of the canvas keeps the full budget
# on exactly this share of each image's pixels (the paper's rule, --mask-rule top), so all have one mean
# budget: the inverse-box map ranks the 448 clutter pixels first and then 128 random box pixels.
CANVAS_SHARE = 0.5625
STRONG_LOW, PART_LOW = 4, 7          # epsilon_low in 255ths: strong contrast, PART's own
CANVAS_MAPS = ("box", "inverse-box", "gradcam", "gradient", "random")


def mean_budget(share: float, low: int, high: int = 8) -> str:
    """The mean budget of `share` at `high`/255 and the rest at `low`/255, as a fraction of 255."""
    return f"{share * high + (1 - share) * low:.4f}/255"


def uniform_arm(share: float, low: int) -> str:
    """Every element at the mean budget, PART's start (+-epsilon): the clean uniform control."""
    u = mean_budget(share, low)
    return "--mask-rule region --region-start epsilon --region-eps " + ",".join(f"{q}={u}" for q in QUADRANTS)


def canvas_arms() -> dict[str, str]:
    """Round 3's canvas arms: name -> flags (the top rule at the box's share for every map)."""
    top = f"--cam-refresh batch --mask-rule top --top-share {CANVAS_SHARE}"
    arms = {"at": "--no-reweight", "uniform": f"--low-epsilon {STRONG_LOW}/255 {uniform_arm(CANVAS_SHARE, STRONG_LOW)}"}
    names = {"box": "box", "inverse-box": "inverse", "gradcam": "cam", "gradient": "gradient", "random": "random"}
    arms.update({names[m]: f"--low-epsilon {STRONG_LOW}/255 --map {m} {top}" for m in CANVAS_MAPS})
    arms["uniform7"] = f"--low-epsilon {PART_LOW}/255 {uniform_arm(CANVAS_SHARE, PART_LOW)}"
    arms.update({f"{names[m]}7": f"--low-epsilon {PART_LOW}/255 --map {m} {top}" for m in ("box", "gradcam")})
    return arms


# ROAD (the grad-cam package's metric of the same maps) beside map-info, on the AutoAttack images; the
# first two runs (at_seed1, cifar_gradient_seed1) started without it and got it by --eval-only.
STUDY3_EVALS = "natural,pgd20,aa-standard,map-info,road"


def study3_canvas(evals: str = STUDY3_EVALS) -> str:
    return (f"{study(evals)} --data CIFAR10-canvas --threads 1 --info-maps gradcam,gradient,box "
            f"--cam-info-share {CANVAS_SHARE}")


def study3_cifar(evals: str = STUDY3_EVALS) -> str:
    """Round 2's setting on CIFAR-10 (1 thread, its share), with map-info of the CAM and the input gradient."""
    return f"{study2(evals)} --info-maps gradcam,gradient"


def _cpu_study_3() -> dict[str, tuple[int, str, str]]:
    runs = {f"{arm}_seed{seed}": (seed if seed <= 4 else 20 + seed, "train_eval_part.py",
                                  f"--seed {seed} {flags} {study3_canvas()}")
            for seed in STUDY_SEEDS + STUDY2_EXTRA_SEEDS for arm, flags in canvas_arms().items()}
    gradient = f"--cam-refresh batch --map gradient --mask-rule top --top-share {STUDY_SHARE}"
    for seed in STUDY_SEEDS + STUDY2_EXTRA_SEEDS:
        runs[f"cifar_gradient_seed{seed}"] = (10 + seed, "train_eval_part.py", f"--seed {seed} {gradient} {study3_cifar()}")
    ladder = study3_cifar(f"{STUDY3_EVALS},cam-info")
    runs["ladder_10k_10_seed1"] = (21, "train_eval_part.py", f"--seed 1 --no-reweight {ladder}")
    full = ladder.replace("--train-subset 10000", "--train-subset 50000")
    runs["ladder_50k_10_seed1"] = (22, "train_eval_part.py", f"--seed 1 --no-reweight {full}")
    # 30 epochs: the same last fifth at a tenth of the lr (epochs 25-30: post-warm-up epoch 22 on).
    runs["ladder_50k_30_seed1"] = (23, "train_eval_part.py", "--seed 1 --no-reweight "
                                   + full.replace("--epochs 10", "--epochs 30").replace("--adjust-first 6",
                                                                                        "--adjust-first 22")
                                   .replace("--eval-every 2", "--eval-every 5"))
    return runs


# --- round 3's calibration and the gradient-masking check -----------------------------------------

# The calibration arm: AT on 25 % more training images (the first 12,500 of the fixed permutation whose first
# 10,000 every other arm trains on), all else as round 3. More data of the same kind raises natural and robust
# accuracy together at a fixed budget, which no budget's trade-off does: it must lie above the uniform budgets'
# line, so its measured distance is the study's sensitivity.
MORE_IMAGES = 12500
# A second calibration arm, twice the images: expected further above the line (the pilot of at_more, seed 1,
# lay +0.07 PGD-20 points above it), so that the two bracket the smallest distance the study detects.
DOUBLE_IMAGES = 20000
CALIBRATION_EVALS = "natural,pgd20,aa-standard"


def _cpu_study_4() -> dict[str, tuple[int, str, str]]:
    """Round 3's line test calibrated, and the CIFAR-10 models of the gradient-masking check retrained.

    Canvas (results/cpu-study/round3, beside round 3's arms): at_more (the calibration arm, at_more_seed1 the
    pilot), at_double (AT on 20,000 images, a second calibration arm) and uniform8 (AT's budget with the uniform arms' unclipped start and map projection: the
    start-matched anchor), seeds 1-8. CIFAR-10 (masking_*, in the same folder): round 2's AT and paper-rule PART
    and round 3's input-gradient PART retrained with natural and PGD-20 only, for their weights (the same
    training flags and seeds; on a machine that rounds differently from the one rounds 2 and 3 ran on, the
    weights and counts differ slightly from theirs, so the masking check measures PGD-20 again on these models)."""
    canvas = f"{study(CALIBRATION_EVALS)} --data CIFAR10-canvas --threads 1"
    more = canvas.replace("--train-subset 10000", f"--train-subset {MORE_IMAGES}")
    runs = {}
    for seed in STUDY_SEEDS + STUDY2_EXTRA_SEEDS:
        runs[f"at_more_seed{seed}"] = (1 if seed == 1 else 2 + seed, "train_eval_part.py",
                                       f"--seed {seed} --no-reweight {more}")
        runs[f"uniform8_seed{seed}"] = (2 if seed == 1 else 2 + seed, "train_eval_part.py",
                                        f"--seed {seed} --low-epsilon {STRONG_LOW}/255 "
                                        f"{uniform_arm(1.0, STRONG_LOW)} {canvas}")
        runs[f"at_double_seed{seed}"] = (10 + seed, "train_eval_part.py", f"--seed {seed} --no-reweight "
                                         + canvas.replace("--train-subset 10000", f"--train-subset {DOUBLE_IMAGES}"))
    cifar = f"{study('natural,pgd20')} --threads 1"
    gradient = f"--cam-refresh batch --map gradient --mask-rule top --top-share {STUDY_SHARE}"
    arms = {"at": study2_arms()["at"], "part_paper": study2_arms()["part_paper"], "cifar_gradient": gradient}
    for seed in STUDY_SEEDS + STUDY2_EXTRA_SEEDS:
        for arm, flags in arms.items():
            runs[f"masking_{arm}_seed{seed}"] = (20 + seed, "train_eval_part.py", f"--seed {seed} {flags} {cifar}")
    return runs


# suite -> name -> (priority, script, arguments)
SUITES = {"reproduction": _reproduction(), "cpu-study": _cpu_study(), "cpu-study-2": _cpu_study_2(),
          "cpu-study-3": _cpu_study_3(), "cpu-study-4": _cpu_study_4()}
# Where a suite's results and checkpoints go by default (others: results/<suite>, checkpoint/<suite>).
SUITE_DIRS = {"reproduction": ("results", "checkpoint/runs"),
              "cpu-study-2": ("results/cpu-study/round2", "checkpoint/cpu-study-2"),
              "cpu-study-3": ("results/cpu-study/round3", "checkpoint/cpu-study-3"),
              "cpu-study-4": ("results/cpu-study/round3", "checkpoint/cpu-study-4")}
RUNS = SUITES["reproduction"]
