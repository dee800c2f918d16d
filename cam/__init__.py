"""Class activation maps and the per-pixel budgets PART derives from them."""
from cam.masks import MASK_RULES, epsilon_map, official_weight
from cam.native import NATIVE_METHODS, compute_cam

__all__ = ["compute_cam", "epsilon_map", "official_weight", "MASK_RULES", "NATIVE_METHODS"]
