"""PART in the paper's order: the one module to read beside the paper (Algorithm 1).

  1. the base methods (AT, TRADES, MART): each an attack, the inner maximisation, and an objective,
     the outer minimisation (attacks/), with the random start and projection the official code gives it;
  2. the learning-rate schedule;
  3. the phases: the warm-up (the base method at ε), then PART (ε on the pixels the batch's importance
     map marks important, ε_low elsewhere), or the baseline (--no-reweight: the base method at ε
     throughout), or one of the controls (fixed region budgets, random placement);
  4. train_batch, the step of a batch written out: the importance map (cam/maps.py) → the ε map
     (cam/rules.py) → the attack (attacks/pgd.py, its start and projection in attacks/common.py) →
     the objective → backward → the SGD step.

The trainer (runner/training/) runs it epoch by epoch and wraps it from outside: bf16 (the attack's
model), DistributedDataParallel (the update's model), CUDA graphs (the phase's attack), AWP (a context
around the update) and the official pairing of masks by batch index (the ε map given).
"""
from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn

from attacks.common import (Budget, Projection, Start, clamp_projection, minmax_projection, no_start, normal_start,
                            uniform_clipped_start, uniform_start)
from attacks.mart import mart_objective
from attacks.mma import mma
from attacks.pgd import at_objective, pgd
from attacks.trades import trades, trades_objective
from cam.maps import MAPS, importance_map
from cam.rules import RULES, epsilon_map, start_radius
from part import PartSettings
from common.rng import image_uniform


# --- 1. The base methods -------------------------------------------------------------------------

# The functions a phase calls, by name: train_batch looks its attack and objective up here.
ATTACKS = {"pgd": pgd, "trades": trades, "mma": mma}          # (model, x, y, eps, step_size, steps, start=, ...)
OBJECTIVES = {"at": at_objective, "trades": trades_objective, "mart": mart_objective}   # (model, x, x_adv, y[, beta])


@dataclass(frozen=True)
class BaseMethod:
    """A base method (its name and flags: part.VARIANTS, whose `base_key` names the entry here)."""
    attack: str                # its training attack: a key of ATTACKS
    objective: str             # its objective: a key of OBJECTIVES
    project: Projection        # the projection of a float budget, as the official code writes it
    start: Start | None = None  # a start whatever --rand_init says; None: the phase's (attack_start)
    takes_beta: bool = False


BASE_METHODS = {
    # PGD-AT (Madry et al.): torchattacks' PGD (the official standard_train); --attack mma: MMA-AT.
    "at": BaseMethod("pgd", "at", clamp_projection),
    # TRADES: the KL inner maximisation, started at x + 0.001 N(0, 1) (at x its gradient is zero).
    "trades": BaseMethod("trades", "trades", minmax_projection, normal_start, takes_beta=True),
    # MART: cross-entropy PGD from the same start, with the official mart_loss's min/max projection.
    "mart": BaseMethod("pgd", "mart", minmax_projection, normal_start, takes_beta=True),
}


def attack_start(s: PartSettings, base: BaseMethod, part_phase: bool) -> Start:
    """The random start of the training attack, as the official code has it in each phase:
    TRADES and MART always start at x + 0.001 N(0, 1); the AT warm-up and baseline use torchattacks'
    PGD (uniform start clipped to [0, 1]); PART's `part_pgd` leaves its uniform start unclipped
    (--clip-part-start clips it as the warm-up does); MMA clips it in both. --rand_init false starts
    the PGD / MMA attacks at x."""
    if base.start is not None:
        return base.start
    if not s.rand_init:
        return no_start
    if s.attack == "pgd" and part_phase and not s.clip_part_start:
        return uniform_start
    return uniform_clipped_start


START_WORDS = {no_start: "none (x)", normal_start: "x + 0.001·N(0, 1)"}     # the starts that span no radius


def start_in_words(s: PartSettings, base: BaseMethod) -> str:
    """The training attack's random start after the warm-up, in words (the report names each arm's)."""
    start = attack_start(s, base, not s.no_reweight)
    if start in START_WORDS:
        return START_WORDS[start]
    radius = "±ε" if s.no_reweight or start_radius(s) is not None else "within its budget map"
    return f"uniform {radius}" + (", clipped to [0, 1]" if start is uniform_clipped_start else "")


# --- 2. The learning-rate schedule ---------------------------------------------------------------

def lr_at(s: PartSettings, epoch: int) -> float:
    """The official schedule: constant during warm-up; afterwards the post-warm-up epoch counter
    (1, 2, ...) is compared with --adjust-first / --adjust-second, as upstream's adjust_learning_rate."""
    if epoch <= s.warm_up:
        return s.lr
    e = epoch - s.warm_up
    if e >= s.adjust_second:
        return s.lr * 0.01
    if e >= s.adjust_first:
        return s.lr * 0.1
    return s.lr


# --- 3. The phases -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Phase:
    name: str                   # warm-up, baseline or part
    attack: str                 # the training attack: a key of ATTACKS
    attack_settings: dict       # its keywords: step_size, steps, start, start_epsilon, project
    objective: str              # the objective: a key of OBJECTIVES
    objective_settings: dict    # its keywords: beta for TRADES and MART, none for AT
    epsilon: float              # the float budget of the warm-up and the baseline
    reweighting: PartSettings | None   # PART's ε map from these settings (map and rule); None: the float epsilon

    @property
    def tracks_budget(self) -> bool:
        """Whether the log shows the share of elements that keep the full budget (not for region maps)."""
        return self.reweighting is not None and not RULES[self.reweighting.mask_rule].gives_budget


def phase(name: str, s: PartSettings, base: BaseMethod, reweighted: bool) -> Phase:
    """The base method's attack and objective with every setting; `reweighted`: PART's ε map (its start in
    ±ε as the official part_pgd / part_mma, or within the region map: cam.rules.start_radius). PART's
    --attack mma trains with MMA and the official mma's projection."""
    attack, project = ("mma", minmax_projection) if s.attack == "mma" else (base.attack, base.project)
    settings = dict(step_size=s.step_size, steps=s.num_steps, start=attack_start(s, base, reweighted),
                    start_epsilon=start_radius(s) if reweighted else None, project=project)
    return Phase(name, attack, settings, base.objective, {"beta": s.beta} if base.takes_beta else {},
                 s.epsilon, s if reweighted else None)


def attack_of(phase: Phase) -> Callable:
    """The phase's attack with its settings, as one callable attack(model, x, y, eps) -> x_adv (what
    train_batch calls, for code that passes it on: the mask grid, the tests)."""
    return functools.partial(ATTACKS[phase.attack], **phase.attack_settings)


def objective_of(phase: Phase) -> Callable:
    """The phase's objective with its settings: objective(model, x, x_adv, y) -> loss (AWP's proxy step)."""
    return functools.partial(OBJECTIVES[phase.objective], **phase.objective_settings)


def phases(s: PartSettings, base: BaseMethod) -> tuple[Phase, Phase]:
    """The warm-up phase and the phase after it (PART, or the --no-reweight baseline)."""
    warm = phase("warm-up", s, base, reweighted=False)
    return warm, (phase("baseline", s, base, reweighted=False) if s.no_reweight
                  else phase("part", s, base, reweighted=True))


# --- 4. The training step of a batch -------------------------------------------------------------

def map_noise(x: torch.Tensor, seed: int) -> torch.Tensor:
    """(B, H, W) U[0, 1) draws for a map that draws (the random maps): the batch's own counter-based
    stream, keyed by `seed` alone (the trainer's per-batch seed), never the training RNG."""
    return image_uniform(torch.arange(len(x), device=x.device), tuple(x.shape[-2:]), seed)


def part_epsilon(s: PartSettings, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 extras: dict | None = None, map_seed: int = 0) -> torch.Tensor:
    """PART's ε map of the batch: its importance map under the current model (cam/maps.py; eval mode, no
    weight gradients; none for a CAM-free rule), then the rule's ε map (cam/rules.py). `extras`: the
    batch's per-image extras a dataset gives, by name (the maps that read one, e.g. the canvas's "box");
    `map_seed`: the batch's stream for a map that draws (map_noise)."""
    if not RULES[s.mask_rule].reads_map:
        return epsilon_map(s, None, x)
    noise = map_noise(x, map_seed) if MAPS[s.cam].draws else None
    return epsilon_map(s, importance_map(s.cam, model, x, y, extras, noise), x)


def train_batch(phase: Phase, model: nn.Module, x: torch.Tensor, y: torch.Tensor, optimizer: torch.optim.Optimizer,
                extras: dict | None = None, eps: Budget | None = None,
                attack_model: nn.Module | None = None, update_model: nn.Module | None = None,
                awp=None, graph=None, map_seed: int = 0) -> tuple[torch.Tensor, Budget]:
    """One batch of PART (Algorithm 1 of the paper), or of the warm-up / baseline, whose budget is the
    float epsilon. Returns (loss, budget). `extras`: the batch's per-image extras by name, for the maps
    that read one (part_epsilon).

    What the trainer wraps it with: `attack_model` (the model under bf16 autocast, --precision; default
    `model`, which the map always sees) and `update_model` (the DistributedDataParallel wrapper under
    torchrun, which all-reduces the update's gradients; default `attack_model`, so under bf16 the update's
    forward runs under autocast too); `eps`: the official pairing's stored ε map
    (--cam-refresh official); `awp`: AWP's perturbation of the weights around the update (--awp-gamma);
    `graph`: the same attack call replayed as a CUDA graph (runner/training/graphs.py);
    `map_seed`: the batch's own stream for a map that draws (the random maps)."""
    attack_model = attack_model or model
    # The ε map: the importance map of this batch under the current model, epsilon on its important
    # pixels, epsilon_low elsewhere; the float epsilon before PART starts and in the baseline.
    if eps is None:
        eps = (part_epsilon(phase.reweighting, model, x, y, extras, map_seed) if phase.reweighting is not None
               else phase.epsilon)
    # The inner maximisation: the adversarial batch inside that budget (the attack owns eval mode).
    attack = ATTACKS[phase.attack]
    if graph is None:
        x_adv = attack(attack_model, x, y, eps, **phase.attack_settings)
    else:
        x_adv = graph(attack, attack_model, x, y, eps, **phase.attack_settings)
    # The outer minimisation: the method's objective on (x, x_adv), in train mode, and one SGD step.
    with awp.around(x, x_adv, y) if awp is not None else contextlib.nullcontext():
        loss = OBJECTIVES[phase.objective](update_model or attack_model, x, x_adv, y, **phase.objective_settings)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return loss, eps
