"""The CAM's information about robustness, measured on a trained model (`--eval cam-info`).

PART's premise is that the pixels its CAM marks matter more to the model's robustness than the others.
This evaluation tests it directly: PGD-20 on the clean test images with the budget epsilon on a share s
(--cam-info-share) of each image's pixels and 0 elsewhere, the pixels being
  top      the model's own importance map's (--map: a CAM of the predicted class, or any map of
           cam/maps.py) highest s of each image (as --mask-rule top)
  random   s of the pixels at random (the evaluation's seeded stream: the same for every model)
  bottom   the map's lowest s;
and the official rule's epsilon / epsilon_low map against a random map with the same number of
full-budget elements in each image (official-random). Lower robust accuracy: a stronger attack, so
random - top > 0 says the CAM's pixels matter more than random ones (and official-random - official
the same of the official rule's).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from attacks.common import uniform_clipped_start
from attacks.pgd import pgd
from cam.maps import importance_map
from cam.rules import budget_from, cam_upsampled, official_weight, top_pixels
from utils.evaluation import EvalSettings

# The sets, in the order of the counts an evaluation batch returns.
SETS = ("top", "random", "bottom", "official", "official-random")
STEPS = 20


def random_like_count(important: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """A uniformly random bool map with as many True elements in each image as `important` has;
    `noise`: (B, elements) U[0, 1) draws that rank the elements."""
    flat = important.flatten(1)
    ranks = noise.argsort(1).argsort(1)
    return (ranks < flat.sum(1, keepdim=True)).view(important.shape)


def global_draw(device: torch.device):
    """draw(k, shape): the k-th U[0, 1) draw of a batch from the global RNG, in order (the batch-seeded scheme)."""
    return lambda k, shape: torch.rand(shape, device=device)


def budgets(model: nn.Module, x: torch.Tensor, y: torch.Tensor, s: EvalSettings,
            draw=None, annotation: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The (B, 3, H, W) budget of each set for the clean images x; `draw(k, shape)` gives the k-th
    U[0, 1) draw of the batch (default: global_draw); `annotation`: the batch's boxes (the box map)."""
    draw = draw or global_draw(x.device)
    eps, size = s.eval_epsilon, x.shape[-1]
    cam = importance_map(s.cam, model, x, y, annotation)
    up = cam_upsampled(cam, size)
    share = s.cam_info_share
    pixels = {"top": top_pixels(up, share), "random": top_pixels(draw(0, up.shape), share),
              "bottom": top_pixels(up, share, largest=False)}
    out = {k: budget_from(v.expand(-1, x.shape[1], -1, -1), eps, 0.0) for k, v in pixels.items()}
    official = official_weight(cam, size) > 1
    out["official"] = budget_from(official, eps, s.low_epsilon)
    out["official-random"] = budget_from(random_like_count(official, draw(1, (len(x), official[0].numel()))),
                                         eps, s.low_epsilon)
    return out


def counts(model: nn.Module, x: torch.Tensor, y: torch.Tensor, s: EvalSettings, draw=None,
           annotation: torch.Tensor | None = None) -> list[int]:
    """Robust counts of one batch under each set (SETS order), then the number of the official map's
    full-budget elements (its share, summed over the batch). `draw`: as in budgets."""
    draw = draw or global_draw(x.device)
    maps = budgets(model, x, y, s, draw, annotation)
    robust = []
    for j, name in enumerate(SETS):
        x_adv = pgd(model, x, y, maps[name], s.step_size, STEPS, start=uniform_clipped_start,
                    start_noise=draw(2 + j, x.shape))
        with torch.no_grad():
            robust.append(model(x_adv).argmax(1) == y)
    out = torch.stack([r.sum() for r in robust] + [(maps["official"] == s.eval_epsilon).sum()])
    return [int(v) for v in out.tolist()]       # one host copy per batch


def summary(columns: list[int], images: int, elements: int) -> dict:
    """Accuracies (%) of each set, the two differences, and the official map's full-budget share."""
    acc = {name: 100.0 * c / images for name, c in zip(SETS, columns)}
    return {**acc, "random - top": acc["random"] - acc["top"],
            "official-random - official": acc["official-random"] - acc["official"],
            "official_share": columns[len(SETS)] / elements}
