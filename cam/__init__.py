"""Class activation maps and the per-pixel budgets PART derives from them."""
from cam.backend import LIBRARY_METHODS
from cam.masks import MASK_RULES, QUADRANTS, epsilon_map, official_weight, region_map
from cam.native import NATIVE_METHODS, compute_cam

CAM_METHODS = NATIVE_METHODS + tuple(LIBRARY_METHODS)

__all__ = ["compute_cam", "epsilon_map", "official_weight", "region_map", "MASK_RULES", "QUADRANTS",
           "NATIVE_METHODS", "CAM_METHODS"]
