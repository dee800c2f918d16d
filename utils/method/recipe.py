"""PART in the paper's order: the one module to read beside the paper (Zhang et al., ICML 2024).

  1. the base methods (AT, TRADES, MART: entries of utils.method.methods.METHODS, each an attack, the inner
     maximisation, and an objective, the outer minimisation) with the random start the official code
     gives each in each phase;
  2. the learning-rate schedule;
  3. the phases: the warm-up (the base method at ε), then PART (ε on the pixels the CAM of the batch
     finds important, ε_low elsewhere), or the baseline (--no-reweight: the base method at ε
     throughout), or one of the controls (fixed region budgets, random placement);
  4. train_batch, the step of a batch written out: the CAM's ε map, the attack, the objective, backward,
     the SGD step.

Everything else (data, RNG streams, checkpoints, resume, logging, the evaluation) is infrastructure
in utils/training/trainer.py and the modules it names; the CAM and the ε map are in cam/, the budget policies in
utils/method/budgets.py, the attacks in attacks/.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn as nn

from attacks import TRAIN_ATTACKS
from attacks.common import Budget
from utils.infra.distributed import Dist
from utils.method.budgets import BatchCamBudget, BudgetPolicy, FixedBudget, PairedCamBudget
from utils.method.graphs import graphed
from utils.method.losses import Attack
from utils.method.methods import BY_LOSS, METHODS, STEP_DECORATIONS
from utils.method.rules import RULES, important_map, rule_params, start_radius


# --- 1. The base methods -------------------------------------------------------------------------

# The base methods are entries of utils.method.methods.METHODS (by their key, BY_LOSS): each its attack, its
# objective, its fixed start and projection, next to its script and flags.


def attack_start(args: argparse.Namespace, loss: str, part_phase: bool) -> str:
    """The random start of the training attack, as the official code has it in each phase:
    TRADES and MART always start at x + 0.001 N(0, 1); the AT warm-up and baseline use torchattacks'
    PGD (uniform start clipped to [0, 1]); PART's `part_pgd` leaves its uniform start unclipped
    (--clip-part-start clips it as the warm-up does); MMA clips it in both. --rand_init false starts
    the PGD / MMA attacks at x."""
    if BY_LOSS[loss].fixed_start:
        return BY_LOSS[loss].fixed_start
    if not args.rand_init:
        return "none"
    if getattr(args, "attack", "pgd") == "pgd" and part_phase and not args.clip_part_start:
        return "uniform"
    return "uniform_clipped"


def start_in_words(args: argparse.Namespace) -> str:
    """The training attack's random start after the warm-up, in words (the report names each arm's)."""
    kind = attack_start(args, METHODS[args.method].loss, not args.no_reweight)
    if kind in ("none", "normal"):
        return {"none": "none (x)", "normal": "x + 0.001·N(0, 1)"}[kind]
    radius = "±ε" if args.no_reweight or start_radius(args) is not None else "within its budget map"
    return f"uniform {radius}" + (", clipped to [0, 1]" if kind == "uniform_clipped" else "")


class Loss(NamedTuple):
    attack: Attack           # the inner maximisation, eval mode: attack(model, x, y, eps) -> x_adv
    objective: Callable      # the outer minimisation: objective(model, x, x_adv, y) -> loss


def training_loss(args: argparse.Namespace, loss: str, part_phase: bool,
                  start_epsilon: Budget | None = None) -> Loss:
    """The attack and objective of one phase (`loss`: a base method's key, utils.method.methods.BY_LOSS) with
    every hyper-parameter taken from the command line once. A float budget gives the base method, PART's
    ε map gives PART."""
    base = BY_LOSS[loss]
    fn = TRAIN_ATTACKS[getattr(args, "attack", "pgd") if base.attack == "--attack" else base.attack]
    attack = Attack(fn, args.step_size, args.num_steps, attack_start(args, loss, part_phase), start_epsilon,
                    base.projection)
    objective = base.objective()
    if base.takes_beta:
        objective = functools.partial(objective, beta=getattr(args, "beta", 0.0))
    return Loss(attack, objective)


# --- 2. The learning-rate schedule ---------------------------------------------------------------

def lr_at(args: argparse.Namespace, epoch: int) -> float:
    """The official schedule: constant during warm-up; afterwards the post-warm-up epoch counter
    (1, 2, ...) is compared with --adjust-first / --adjust-second, as upstream's adjust_learning_rate."""
    if epoch <= args.warm_up:
        return args.lr
    e = epoch - args.warm_up
    if e >= args.adjust_second:
        return args.lr * 0.01
    if e >= args.adjust_first:
        return args.lr * 0.1
    return args.lr


# --- 3. The phases -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Phase:
    name: str                 # warm-up, baseline or part
    budget: BudgetPolicy      # a float, a fixed map, or PART's CAM of the batch -> ε map (utils.method.budgets)
    attack: Callable          # attack(model, x, y, eps) -> x_adv (a CUDA graph of it on CUDA: utils.method.graphs)
    objective: Callable       # objective(model, x, x_adv, y) -> loss
    optimizer: torch.optim.Optimizer
    tracks_budget: bool       # log the share of elements that keep the full budget
    decorations: tuple = ()   # around the update (utils.method.methods.STEP_DECORATIONS: AWP), when on

    def begin_epoch(self, epoch: int) -> None:
        for d in self.decorations:
            d.begin_epoch(epoch)


def phases(args: argparse.Namespace, loss: str, model: nn.Module, optimizer: torch.optim.Optimizer,
           image_size: int, rank_batch: int, device: torch.device, dist: Dist,
           mask_pass: Callable[[int], Iterable[torch.Tensor]], progress: bool) -> tuple[Phase, Phase, BudgetPolicy]:
    """The warm-up phase, the phase after it, and the budget the mask grids show."""
    a = args

    def phase(name: str, budget: BudgetPolicy, tracks: bool, part_phase: bool, start_epsilon: Budget | None = None):
        attack, objective = training_loss(a, loss, part_phase, start_epsilon)
        decorations = tuple(d.build(model, objective, a, dist) for d in STEP_DECORATIONS if getattr(a, d.on))
        return Phase(name, budget, graphed(attack, rank_batch, device, not a.no_cuda_graphs), objective, optimizer,
                     tracks, decorations)
    warm = phase("warm-up", FixedBudget(a.epsilon), False, False)
    rule = RULES[a.mask_rule]
    if not rule.needs_cam:                       # the controls: no CAM (utils.method.rules)
        grid, start_epsilon, tracks = rule.builder(a, image_size, device)
    else:
        # PART: the CAM of each batch -> the rule's important elements; the official part_pgd / part_mma
        # start in +-epsilon.
        rule_of_cam = functools.partial(important_map, size=image_size, rule=a.mask_rule, **rule_params(a))
        grid = BatchCamBudget(model, a.cam, rule_of_cam, a.epsilon, a.low_epsilon)
        start_epsilon, tracks = start_radius(a), True
    if a.no_reweight:
        return warm, phase("baseline", FixedBudget(a.epsilon), False, False), grid
    budget = grid
    if isinstance(grid, BatchCamBudget) and a.cam_refresh == "official":
        budget = PairedCamBudget(model, a.cam, grid.rule, a.epsilon, a.low_epsilon, mask_pass, a.warm_up + 1,
                                 a.save_weights, progress)
    return warm, phase("part", budget, tracks, True, start_epsilon), grid


# --- 4. The training step of a batch -------------------------------------------------------------

def train_batch(phase: Phase, model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_idx: int,
                step_model: nn.Module | None = None) -> tuple[torch.Tensor, Budget]:
    """One batch of PART (Algorithm 1 of the paper), or of the warm-up / baseline, whose budget is the
    float epsilon. Returns (loss, budget). `step_model`: the DistributedDataParallel wrapper under
    torchrun (it all-reduces the gradients of the update); the attack and the CAM use the model itself."""
    # The ε map: the CAM of this batch under the current model (eval mode, no weight gradients),
    # epsilon on its important pixels, epsilon_low elsewhere (cam.masks); a float before PART starts.
    eps = phase.budget(batch_idx, x)
    # The inner maximisation: the adversarial batch inside that budget (the attack owns eval mode).
    x_adv = phase.attack(model, x, y, eps)
    with contextlib.ExitStack() as decorated:     # AWP perturbs the weights for the update, when on
        for d in phase.decorations:
            decorated.enter_context(d.around(x, x_adv, y))
        # The outer minimisation: the method's objective on (x, x_adv), in train mode, and one SGD step.
        loss = phase.objective(step_model or model, x, x_adv, y)
        phase.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        phase.optimizer.step()
    return loss, eps
