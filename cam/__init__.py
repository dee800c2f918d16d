"""Class activation maps and the per-pixel budgets PART derives from them."""
from cam.masks import MASK_RULES, QUADRANTS, epsilon_map, official_weight, region_map
from cam.native import NATIVE_METHODS, compute_cam
from utils.names import CAM_METHODS

__all__ = ["compute_cam", "epsilon_map", "official_weight", "region_map", "MASK_RULES", "QUADRANTS",
           "NATIVE_METHODS", "CAM_METHODS"]
