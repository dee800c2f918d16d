"""The named runs of the reproduction (ResNet-18, CIFAR-10, the official schedule: 80 epochs, 20 of
them warm-up, batch 128, every evaluation on the 10,000 test images: natural, PGD-20, MMA, both
AutoAttacks — torchattacks', as the official code, and the authors', as RobustBench), by priority."""
from __future__ import annotations

FIG1 = "--warm-up 0 --mask-rule region --eval natural,pgd20 --region-eps"
ALL = "--eval natural,pgd20,mma,aa,aa-standard"


def _runs() -> dict[str, tuple[int, str, str]]:
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


# name -> (priority, script, arguments)
RUNS = _runs()
