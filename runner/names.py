"""The evaluations the command line offers, kept free of torch so that `--help`, the report and the
experiment runner start without importing torch, torchvision or matplotlib. (The datasets are entries of
runner/data/datasets.py, the maps and rules of cam/, the models of models/.)"""
from __future__ import annotations

# aa: AutoAttack through torchattacks (the official PART evaluation); aa-standard: the authors'
# implementation (pyautoattack, RobustBench's evaluator). The default --eval is the official set.
# cam-info: PGD-20 restricted to the CAM's top, random and bottom pixels (runner/evaluation/cam_info.py); not a default.
# map-info: the same of any maps (--info-maps), with the pointing game and the IoU where images carry boxes.
# road: the grad-cam package's ROAD metric of the same maps, on the --aa-subset images.
EVALS = ("natural", "pgd20", "mma", "aa", "aa-standard", "cam-info", "map-info", "road")
DEFAULT_EVALS = ("natural", "pgd20", "mma", "aa")
AUTOATTACKS = ("aa", "aa-standard")
# How an attack evaluation seeds its random starts (common.rng): per image (the default) or per batch.
EVAL_SEEDINGS = ("image", "batch")

# --eval-only PREFIX:NAME: models from elsewhere, each evaluated by the function its module registers
# here ({prefix: function(args, stop, dist) -> the results record}); exchange/eval_only.py registers
# "robustbench:" (RobustBench's zoo), and the three scripts import it. The runner knows no source itself.
EVAL_ONLY_SOURCES: dict = {}
