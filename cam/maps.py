"""The importance maps (`--map NAME`, also spelt `--cam`): what PART asks of a batch before its ε map —
which pixels matter? One entry of MAPS per map, beside its function; a map turns (model, x, y, the
batch's per-image extras by name where the dataset gives any) into (B, h, w) per-pixel importances in [0, 1], at the
model's CAM layer or at the input resolution. The mask rules (cam/rules.py) take any of them.

  gradcam, xgradcam, layercam   batched CAMs for the predicted class, in one forward pass (below);
                                equal to the grad-cam package's (tests/method/test_cam.py)
  gradcam++, scorecam, ...      the grad-cam package's other CAMs (cam/backend.py)
  gradient                      input-gradient saliency: |dCE(f(x), y)/dx| summed over the channels,
                                per image, in eval mode, min-max normalised
  box                           the dataset's object box (extras["box"]): 1 inside each image's box, 0 outside
  inverse-box                   the box's complement first: 1 outside the box, inside it a random value
                                below 1/2 per pixel, so a top share larger than the outside takes all of
                                the outside and a random part of the box (the positive control's inverse arm)
  random                        a U[0, 1) value per pixel: the top share of it is a random share of the
                                pixels, exactly as many in every image (the control of placement)

The two random maps draw from the caller's stream (`noise`, one U[0, 1) value per pixel of each image):
training passes each batch's own counter-based stream (part.step.map_noise), never the training RNG,
so a random arm's shuffle and attack noise stay those of every other arm of the same seed.

The native CAMs call the model's `features` (up to the CAM layer) and `head` separately and take the
gradient with respect to the features only: no hooks, no weight gradients, no per-image loop,
BatchNorm in eval mode (its running statistics untouched) and the model's mode restored.

Torch-free at import (the command line lists the maps): each function imports torch when it runs.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from common.errors import UserError


def minmax_normalise(cam):
    """Per-map min-max to [0, 1] over the last two dims; a constant map becomes zeros (the official
    mask rule treats an all-zero map as torchcam's NaN map, see cam/rules.py)."""
    import torch
    flat = cam.flatten(-2)
    lo = flat.min(-1).values[..., None, None]
    span = flat.max(-1).values[..., None, None] - lo
    return torch.where(span > 0, (cam - lo) / torch.where(span > 0, span, torch.ones_like(span)),
                       torch.zeros_like(cam))


def cam_map(model, x, y=None, extras=None, method: str = "gradcam", targets=None):
    """A CAM as an importance map: (B, h, w) in [0, 1] for the predicted class (as PART: the label y is not
    used) or `targets`: the native ones at the model's CAM layer (one forward to `features`, the gradient
    of the class's logit with respect to them, weighted activations, ReLU, min-max), the grad-cam
    package's at the input resolution."""
    import torch

    from models.zoo import eval_mode
    if method in LIBRARY_CAMS:
        from cam.backend import library_cam
        return library_cam(model, x, LIBRARY_CAMS[method], targets)
    if method not in NATIVE_CAMS:
        raise ValueError(f"unknown CAM method {method!r}; choose from {', '.join(CAM_METHODS)}")
    with eval_mode(model), torch.enable_grad():
        acts = model.features(x.detach())
        if not acts.requires_grad:        # a model whose parameters are all frozen
            acts = acts.detach().requires_grad_(True)
        logits = model.head(acts)
        if targets is None:
            targets = logits.argmax(1)
        score = logits.gather(1, targets[:, None]).sum()
        grads, = torch.autograd.grad(score, acts)
    acts, grads = acts.detach().float(), grads.float()
    if method == "gradcam":               # each channel weighted by its mean gradient
        weights = grads.mean(dim=(2, 3), keepdim=True)
        cam = (weights * acts).sum(1)
    elif method == "xgradcam":            # by its gradient averaged with the activations as weights
        weights = (grads * acts).sum(dim=(2, 3), keepdim=True) / (acts.sum(dim=(2, 3), keepdim=True) + 1e-7)
        cam = (weights * acts).sum(1)
    else:                                 # layercam: each element by its positive gradient
        cam = (grads.clamp(min=0) * acts).sum(1)
    return minmax_normalise(cam.clamp(min=0))


def compute_cam(model, x, method: str = "gradcam", targets=None):
    """The CAM `method` of the batch x (cam_map, called by the method's name: the pictures, the tests)."""
    return cam_map(model, x, method=method, targets=targets)


def input_gradient(model, x, y, extras=None):
    """|dCE(f(x), y)/dx| summed over the channels, per image, in eval mode, min-max normalised to [0, 1]."""
    import torch
    import torch.nn.functional as F

    from models.zoo import eval_mode
    with eval_mode(model), torch.enable_grad():
        x = x.detach().requires_grad_(True)
        grad, = torch.autograd.grad(F.cross_entropy(model(x), y, reduction="sum"), x)
    return minmax_normalise(grad.abs().sum(1))


def box_map(model, x, y, extras):
    """1 inside each image's box, 0 outside: `extras["box"]` (B, 4) integer boxes (top, left, bottom, right),
    bottom and right exclusive, in pixels of x."""
    import torch
    if not extras or "box" not in extras:
        raise UserError("--map box needs a dataset whose images carry an object box")
    size = x.shape[-1]
    rows = torch.arange(size, device=x.device)
    top, left, bottom, right = (extras["box"][:, i, None].to(x.device) for i in range(4))
    inside_rows = (rows >= top) & (rows < bottom)
    inside_cols = (rows >= left) & (rows < right)
    return (inside_rows[:, :, None] & inside_cols[:, None, :]).float()


def inverse_box(model, x, y, extras, noise):
    """1 outside each image's box; inside it noise / 2 (< 1/2): ranked after every outside pixel, in a
    random order of their own."""
    box = box_map(model, x, y, extras)
    return 1.0 - box + box * noise.to(box.device) / 2


def random_map(model, x, y, extras, noise):
    """The caller's U[0, 1) draw itself, one value per pixel: ranks the pixels at random."""
    return noise.float()


@dataclass(frozen=True)
class ImportanceMap:
    name: str
    help: str
    fn: Callable              # fn(model, x, y, extras[, noise]) -> (B, h, w) importances in [0, 1]
    reads: str | None = None  # the per-image extra it reads (extras[reads]), which the dataset must give
    draws: bool = False       # takes `noise`: (B, H, W) U[0, 1) draws of the caller's stream

    def refusal(self, data: str, extras: tuple[str, ...]) -> str | None:
        """Why this map cannot run on the dataset `data`, whose images carry `extras` (None: it can)."""
        if self.reads in (None, *extras):
            return None
        return f"needs a dataset whose images carry a {self.reads}; {data} has none"


NATIVE_CAMS = ("gradcam", "xgradcam", "layercam")
# --map name -> class name in pytorch_grad_cam
LIBRARY_CAMS = {
    "gradcam++": "GradCAMPlusPlus", "hirescam": "HiResCAM", "scorecam": "ScoreCAM", "ablationcam": "AblationCAM",
    "eigencam": "EigenCAM", "eigengradcam": "EigenGradCAM", "gradcamelementwise": "GradCAMElementWise",
    "fullgrad": "FullGrad", "lib-gradcam": "GradCAM", "lib-xgradcam": "XGradCAM", "lib-layercam": "LayerCAM",
}
CAM_METHODS = NATIVE_CAMS + tuple(LIBRARY_CAMS)

MAPS = {m.name: m for m in (
    *(ImportanceMap(n, "native batched CAM", functools.partial(cam_map, method=n)) for n in NATIVE_CAMS),
    *(ImportanceMap(n, f"pytorch_grad_cam.{cls}", functools.partial(cam_map, method=n))
      for n, cls in LIBRARY_CAMS.items()),
    ImportanceMap("gradient", "input-gradient saliency |dCE/dx|, summed over channels", input_gradient),
    ImportanceMap("box", "the dataset's object box (a dataset whose images carry one)", box_map, reads="box"),
    ImportanceMap("inverse-box", "the box's complement, then random box pixels (a dataset whose images carry a box)",
                  inverse_box, reads="box", draws=True),
    ImportanceMap("random", "a random value per pixel: a random share of exactly the top share's size", random_map,
                  draws=True),
)}
RANDOM_MAPS = tuple(name for name, m in MAPS.items() if m.draws)


def importance_map(name: str, model, x, y=None, extras=None, noise=None):
    """(B, h, w) importances in [0, 1] of the batch x under the current model: MAPS[name]'s. `extras`: the
    batch's per-image extras by name (read by the maps that name one: `reads`); `noise`: (B, H, W) U[0, 1)
    draws, read only by the maps that draw (RANDOM_MAPS), which need it."""
    entry = MAPS[name]
    if not entry.draws:
        return entry.fn(model, x, y, extras)
    if noise is None:
        raise ValueError(f"--map {name} draws: give it the batch's noise")
    return entry.fn(model, x, y, extras, noise)
