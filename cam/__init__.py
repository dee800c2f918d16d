"""Class activation maps (`cam.native.compute_cam`) and the per-pixel maps PART derives from them
(`cam.masks`). Here: the names of the CAM methods, kept free of torch so that `--help` starts without it."""
from __future__ import annotations

NATIVE_CAMS = ("gradcam", "xgradcam", "layercam")
# --cam name -> class name in pytorch_grad_cam
LIBRARY_CAMS = {
    "gradcam++": "GradCAMPlusPlus",
    "hirescam": "HiResCAM",
    "scorecam": "ScoreCAM",
    "ablationcam": "AblationCAM",
    "eigencam": "EigenCAM",
    "eigengradcam": "EigenGradCAM",
    "gradcamelementwise": "GradCAMElementWise",
    "fullgrad": "FullGrad",
    "lib-gradcam": "GradCAM",
    "lib-xgradcam": "XGradCAM",
    "lib-layercam": "LayerCAM",
}
CAM_METHODS = NATIVE_CAMS + tuple(LIBRARY_CAMS)
# The image quadrants of --mask-rule region (Figure 1 of the paper), upper / bottom, left / right.
QUADRANTS = ("ul", "ur", "bl", "br")
