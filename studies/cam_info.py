"""The CAM's information about robustness, measured on a trained model (`--eval cam-info`), a study's
evaluation (registered with the runner by studies/evaluations.py).

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

`--eval map-info` asks the same of any maps (--info-maps, default the run's --map) and, on a dataset
whose images carry an object box, how well each map finds the object:
  top, bottom  PGD-20 with epsilon on the map's top / bottom share of each image's pixels (ties broken at
               random), 0 elsewhere; one random share, the same for every map, beside them;
  pointing     the share of images whose map maximum (upsampled to the image) lies inside the box;
  iou          the mean over images of the top share's intersection over union with the box.
A map that draws (random, inverse-box) gets the evaluation's own draws.

`--eval road` runs the grad-cam package's ROAD metric (Rong et al. 2022, `ROADCombined`) on the same maps
beside it, on the --aa-subset images, each map given as its pixels' ranks (ties at random: rank_map):
the mean over ROAD_PERCENTILES of the change in the label's
softmax probability when the map's least relevant pixels are imputed (noisy linear imputation), minus
the same for its most relevant ones, halved; higher: the map ranks what the natural prediction needs
first. It asks map-info's question of the clean prediction rather than of the attack's damage.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from attacks.common import uniform_clipped_start
from attacks.pgd import pgd
from cam.maps import MAPS, box_map, importance_map
from cam.rules import budget_from, cam_upsampled, official, top_pixels
from runner.evaluation import EvalSettings
from runner.evaluation.evaluate import global_draw

# The sets, in the order of the counts an evaluation batch returns.
SETS = ("top", "random", "bottom", "official", "official-random")
STEPS = 20


def random_like_count(important: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """A uniformly random bool map with as many True elements in each image as `important` has;
    `noise`: (B, elements) U[0, 1) draws that rank the elements."""
    flat = important.flatten(1)
    ranks = noise.argsort(1).argsort(1)
    return (ranks < flat.sum(1, keepdim=True)).view(important.shape)


def share_of(s: EvalSettings) -> float:
    """--cam-info-share: the share of each image's pixels attacked (studies/evaluations.py declares it)."""
    return s.study["cam_info_share"]


def maps_of(s: EvalSettings) -> tuple[str, ...]:
    """--info-maps: the maps map-info and road measure (default: the run's --map)."""
    return tuple(s.study["info_maps"] or (s.cam,))


def budgets(model: nn.Module, x: torch.Tensor, y: torch.Tensor, s: EvalSettings,
            draw=None, extras: dict | None = None) -> dict[str, torch.Tensor]:
    """The (B, 3, H, W) budget of each set for the clean images x; `draw(k, shape)` gives the k-th
    U[0, 1) draw of the batch (default: global_draw); `extras`: the batch's per-image extras (the box map's "box")."""
    draw = draw or global_draw(x.device)
    eps, size = s.eval_epsilon, x.shape[-1]
    # A map that draws: its own draw, after the two sets' (0, 1) and the attacks' starts (2 .. 2 + len(SETS) - 1).
    noise = draw(2 + len(SETS), (len(x), size, size)) if MAPS[s.cam].draws else None
    cam = importance_map(s.cam, model, x, y, extras, noise)
    up = cam_upsampled(cam, size)
    share = share_of(s)
    pixels = {"top": top_pixels(up, share), "random": top_pixels(draw(0, up.shape), share),
              "bottom": top_pixels(up, share, largest=False)}
    out = {k: budget_from(v.expand(-1, x.shape[1], -1, -1), eps, 0.0) for k, v in pixels.items()}
    full = official(cam, x, s)
    out["official"] = budget_from(full, eps, s.low_epsilon)
    out["official-random"] = budget_from(random_like_count(full, draw(1, (len(x), full[0].numel()))),
                                         eps, s.low_epsilon)
    return out


def counts(model: nn.Module, x: torch.Tensor, y: torch.Tensor, s: EvalSettings, draw=None,
           extras: dict | None = None) -> list[int]:
    """Robust counts of one batch under each set (SETS order), then the number of the official map's
    full-budget elements (its share, summed over the batch). `draw`: as in budgets."""
    draw = draw or global_draw(x.device)
    maps = budgets(model, x, y, s, draw, extras)
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


# --- map-info: any maps' information and localisation ----------------------------------------------

# Per map, in the order of the counts an evaluation batch returns (after the random set's count).
MAP_COLUMNS = ("top", "bottom", "pointing", "iou")


def ranked(score: torch.Tensor, tie: torch.Tensor, largest: bool = True) -> torch.Tensor:
    """(B, HW) pixel indices of each image, highest `score` first (lowest with largest=False), ties in
    the random order of `tie` (U[0, 1) of the same shape): two stable sorts."""
    first = tie.flatten(1).argsort(1)
    second = score.flatten(1).gather(1, first).argsort(dim=1, descending=largest, stable=True)
    return first.gather(1, second)


def chosen(order: torch.Tensor, k: int, shape: torch.Size) -> torch.Tensor:
    """(B, 1, H, W) bool: the first k pixels of each image's `order`."""
    out = torch.zeros(order.shape, dtype=torch.bool, device=order.device)
    return out.scatter_(1, order[:, :k], True).view(shape[0], 1, *shape[-2:])


def map_info_counts(model: nn.Module, x: torch.Tensor, y: torch.Tensor, s: EvalSettings, draw=None,
                    extras: dict | None = None) -> list:
    """One batch's robust count under the random share, then per map of --info-maps its robust counts
    under its top and bottom share, its pointing hits and its summed IoU with the box (0, 0 without boxes)."""
    draw = draw or global_draw(x.device)
    b, size = len(x), x.shape[-1]
    pixels = (b, size, size)
    k = max(1, min(size * size, round(share_of(s) * size * size)))
    random_set = chosen(ranked(draw(0, pixels), draw(1, pixels)), k, x.shape)
    tie = draw(2, pixels)
    sets, located = [random_set], []
    box = box_map(model, x, y, extras).bool() if extras and "box" in extras else None
    for name in maps_of(s):
        noise = draw(3, pixels) if MAPS[name].draws else None
        up = cam_upsampled(importance_map(name, model, x, y, extras, noise), size)[:, 0]
        top_order = ranked(up, tie)
        top = chosen(top_order, k, x.shape)
        sets += [top, chosen(ranked(up, tie, largest=False), k, x.shape)]
        if box is None:
            located += [torch.zeros((), device=x.device), torch.zeros((), device=x.device)]
            continue
        flat = box.flatten(1)
        pointing = flat.gather(1, top_order[:, :1]).sum()
        inter = (top[:, 0] & box).flatten(1).sum(1).float()
        union = (top[:, 0] | box).flatten(1).sum(1).float()
        located += [pointing.float(), (inter / union).sum()]
    robust = []
    for j, pixels_of in enumerate(sets):
        eps = budget_from(pixels_of.expand(-1, x.shape[1], -1, -1), s.eval_epsilon, 0.0)
        x_adv = pgd(model, x, y, eps, s.step_size, STEPS, start=uniform_clipped_start, start_noise=draw(4 + j, x.shape))
        with torch.no_grad():
            robust.append((model(x_adv).argmax(1) == y).sum().float())
    columns = [robust[0]]
    for i in range(len(maps_of(s))):
        columns += [robust[1 + 2 * i], robust[2 + 2 * i], located[2 * i], located[2 * i + 1]]
    values = torch.stack(columns).tolist()      # one host copy per batch
    return [v if j and (j - 1) % 4 == 3 else int(v) for j, v in enumerate(values)]   # counts, and the IoU sums


def map_info_summary(columns: list[float], images: int, maps: tuple[str, ...], share: float, boxes: bool) -> dict:
    """Accuracies (%) of the random share and of each map's top and bottom share, their differences, and
    (with boxes) the pointing game (%) and the mean IoU."""
    out: dict = {"share": share, "random": 100.0 * columns[0] / images, "maps": {}}
    for i, name in enumerate(maps):
        top, bottom, pointing, iou = columns[1 + 4 * i: 5 + 4 * i]
        m = {"top": 100.0 * top / images, "bottom": 100.0 * bottom / images}
        m["random - top"], m["bottom - top"] = out["random"] - m["top"], m["bottom"] - m["top"]
        if boxes:
            m["pointing"], m["iou"] = 100.0 * pointing / images, iou / images
        out["maps"][name] = m
    return out


# --- ROAD (the grad-cam package's), beside map-info ----------------------------------------------------

ROAD_PERCENTILES = (20, 40, 60, 80)


def rank_map(score: torch.Tensor, tie: torch.Tensor) -> torch.Tensor:
    """(B, H, W) each pixel's rank in its image, scaled to [0, 1) (the highest score highest), ties in the
    random order of `tie`: ROAD thresholds a map at its percentiles with `<`, so a map with large equal
    areas (the box's 0s and 1s, a CAM's zeros) would remove all or none of them at once."""
    order = ranked(score, tie, largest=False)          # lowest first
    ranks = torch.empty_like(order, dtype=torch.float32)
    ranks.scatter_(1, order, torch.arange(order.shape[1], device=score.device, dtype=torch.float32)[None]
                   .expand_as(ranks).contiguous())
    return (ranks / order.shape[1]).view(score.shape)


def road_sums(model: nn.Module, x: torch.Tensor, y: torch.Tensor, s: EvalSettings, draw=None,
              extras: dict | None = None) -> list[float]:
    """The batch's summed ROADCombined score of each map of --info-maps (maps upsampled to the image)."""
    from pytorch_grad_cam.metrics.road import ROADCombined
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget
    draw = draw or global_draw(x.device)
    size = x.shape[-1]
    targets = [ClassifierOutputSoftmaxTarget(int(c)) for c in y.tolist()]
    metric = ROADCombined(percentiles=list(ROAD_PERCENTILES))
    out = []
    for name in maps_of(s):
        noise = draw(0, (len(x), size, size)) if MAPS[name].draws else None
        up = cam_upsampled(importance_map(name, model, x, y, extras, noise), size)[:, 0]
        with torch.no_grad():
            out.append(float(metric(x, rank_map(up, draw(1, up.shape)).cpu().numpy(), targets, model).sum()))
    return out


# --- what each evaluation stores and prints (studies/evaluations.py registers them) -----------------

def cam_info_summary(columns: list[int], images: int, s: EvalSettings, image_elements: int, extras: tuple) -> dict:
    return {"share": share_of(s), **summary(columns, images, images * image_elements)}


def cam_info_lines(res: dict, s: EvalSettings, images: int, extras: tuple) -> str:
    return (f"CAM-info{'=' * 56}\nPGD-20 robust accuracy with epsilon on a share of each image's pixels, 0 elsewhere: "
            + ", ".join(f"{k} {res[k]:.2f}%" for k in SETS[:3])
            + f" (random - top {res['random - top']:+.2f}); official rule {res['official']:.2f}% vs the same share "
            f"at random {res['official-random']:.2f}% (official full-budget share {100 * res['official_share']:.1f}%)")


def map_info_entry(columns: list[float], images: int, s: EvalSettings, image_elements: int, extras: tuple) -> dict:
    return map_info_summary(columns, images, maps_of(s), share_of(s), "box" in extras)


def map_info_lines(res: dict, s: EvalSettings, images: int, extras: tuple) -> str:
    lines = [f"Map-info{'=' * 56}", f"PGD-20 robust accuracy with epsilon on {100 * share_of(s):.2f} % of each "
             f"image's pixels, 0 elsewhere: random {res['random']:.2f}%"]
    for name, m in res["maps"].items():
        where = f"; pointing {m['pointing']:.2f}%, IoU with the box {m['iou']:.3f}" if "box" in extras else ""
        lines.append(f"  {name}: top {m['top']:.2f}%, bottom {m['bottom']:.2f}% (random - top "
                     f"{m['random - top']:+.2f}){where}")
    return "\n".join(lines)


def road_entry(columns: list[float], images: int, s: EvalSettings, image_elements: int, extras: tuple) -> dict:
    return {"percentiles": list(ROAD_PERCENTILES), "maps": {m: v / images for m, v in zip(maps_of(s), columns)}}


def road_lines(res: dict, s: EvalSettings, images: int, extras: tuple) -> str:
    return (f"ROAD{'=' * 61}\nROAD (grad-cam, combined, percentiles {','.join(map(str, ROAD_PERCENTILES))}) on "
            f"{images} images: " + ", ".join(f"{m} {v:+.4f}" for m, v in res["maps"].items()))
