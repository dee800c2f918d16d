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


# suite -> name -> (priority, script, arguments)
SUITES = {"reproduction": _reproduction(), "cpu-study": _cpu_study(), "cpu-study-2": _cpu_study_2()}
# Where a suite's results and checkpoints go by default (others: results/<suite>, checkpoint/<suite>).
SUITE_DIRS = {"reproduction": ("results", "checkpoint/runs"),
              "cpu-study-2": ("results/cpu-study/round2", "checkpoint/cpu-study-2")}
RUNS = SUITES["reproduction"]
