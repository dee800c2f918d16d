"""Any CAM method of the grad-cam package (pytorch_grad_cam), batched, hooks released afterwards.

These maps come back at the input resolution, min-max normalised by the package; a mask rule then
resizes size->size, which is the identity for both mask rules' resamplers.
"""
from __future__ import annotations

import contextlib
import importlib
import io

import numpy as np
import torch
import torch.nn as nn

from models.zoo import cam_layer, eval_mode


def library_cam(model: nn.Module, x: torch.Tensor, class_name: str,
                targets: torch.Tensor | None = None) -> torch.Tensor:
    """(B, H, W) maps in [0, 1] from pytorch_grad_cam's `class_name` (GradCAMPlusPlus, ScoreCAM, ...) for
    the predicted class (or `targets`)."""
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cls = getattr(importlib.import_module("pytorch_grad_cam"), class_name)
    try:
        # ScoreCAM and AblationCAM draw their own progress bars on stderr; keep the log clean.
        with eval_mode(model), torch.enable_grad(), contextlib.redirect_stderr(io.StringIO()), \
                np.errstate(all="ignore"), cls(model=model, target_layers=[cam_layer(model)]) as extractor:
            tgt = None if targets is None else [ClassifierOutputTarget(int(t)) for t in targets]
            maps = extractor(input_tensor=x.detach(), targets=tgt)
    finally:
        model.zero_grad(set_to_none=True)   # the package calls backward() on the weights
    # AblationCAM divides by the class score, which can be 0 (e.g. a zero-initialised last layer):
    # a map without information counts as flat.
    return torch.nan_to_num(torch.from_numpy(maps).to(x.device).float(), nan=0.0)
