"""GradCAM, XGradCAM and LayerCAM for a whole batch in one forward pass.

Equal to pytorch_grad_cam's maps for the same layer and targets (see tests/test_cam.py). The model's
`features` (up to the CAM layer) and `head` are called separately and the gradient is taken with
respect to the features only: no hooks, no weight gradients, no per-image loop, BatchNorm in eval
mode (its running statistics untouched) and the model's mode restored.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from cam import NATIVE_CAMS as NATIVE_METHODS
from cam.backend import LIBRARY_METHODS, library_cam
from models.zoo import eval_mode


def _combine(method: str, acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    if method == "gradcam":
        weights = grads.mean(dim=(2, 3), keepdim=True)
        return (weights * acts).sum(1)
    if method == "xgradcam":
        weights = (grads * acts).sum(dim=(2, 3), keepdim=True) / (acts.sum(dim=(2, 3), keepdim=True) + 1e-7)
        return (weights * acts).sum(1)
    if method == "layercam":
        return (grads.clamp(min=0) * acts).sum(1)
    raise ValueError(f"unknown CAM method {method!r}; choose from {', '.join(NATIVE_METHODS)}")


def minmax_normalise(cam: torch.Tensor) -> torch.Tensor:
    """Per-map min-max to [0, 1] over the last two dims; a constant map becomes zeros (the official
    mask rule treats an all-zero map as torchcam's NaN map, see cam.masks)."""
    flat = cam.flatten(-2)
    lo = flat.min(-1).values[..., None, None]
    span = flat.max(-1).values[..., None, None] - lo
    return torch.where(span > 0, (cam - lo) / torch.where(span > 0, span, torch.ones_like(span)),
                       torch.zeros_like(cam))


def raw_cam(model: nn.Module, x: torch.Tensor, method: str = "gradcam",
            targets: torch.Tensor | None = None) -> torch.Tensor:
    """(B, h, w) CAMs after the ReLU, before normalisation, for the predicted class (or `targets`)."""
    if method not in NATIVE_METHODS:
        raise ValueError(f"unknown CAM method {method!r}; choose from "
                         f"{', '.join(NATIVE_METHODS + tuple(LIBRARY_METHODS))}")
    with eval_mode(model), torch.enable_grad():
        acts = model.features(x.detach())
        if not acts.requires_grad:        # a model whose parameters are all frozen
            acts = acts.detach().requires_grad_(True)
        logits = model.head(acts)
        if targets is None:
            targets = logits.argmax(1)
        score = logits.gather(1, targets[:, None]).sum()
        grads, = torch.autograd.grad(score, acts)
    return _combine(method, acts.detach().float(), grads.float()).clamp(min=0)


def compute_cam(model: nn.Module, x: torch.Tensor, method: str = "gradcam",
                targets: torch.Tensor | None = None) -> torch.Tensor:
    """(B, h, w) CAMs in [0, 1] at the model's CAM layer, for the predicted class (or `targets`).

    Methods other than gradcam / xgradcam / layercam go through the grad-cam package and come
    back at the input resolution."""
    if method in LIBRARY_METHODS:
        return library_cam(model, x, method, targets)
    return minmax_normalise(raw_cam(model, x, method, targets))
