"""The names the command line offers, kept free of torch so that `--help`, the report and the
experiment runner start without importing torch, torchvision or matplotlib."""
from __future__ import annotations

DATASETS = ("CIFAR10", "SVHN", "TinyImagenet")
IMAGE_SIZE = {"CIFAR10": 32, "SVHN": 32, "TinyImagenet": 64}
# Every layout of a dataset is checked to hold exactly this many classes (utils.data.check_tree).
NUM_CLASSES = {"CIFAR10": 10, "SVHN": 10, "TinyImagenet": 200}
# The class folder names an image-folder tree or zip of each dataset must have: CIFAR-10's ten names
# (their sorted order is the canonical one), SVHN's digits; TinyImageNet's are WordNet ids (n + 8 digits).
CLASS_NAMES = {"CIFAR10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
               "SVHN": tuple(str(d) for d in range(10))}
# The datasets whose images carry an object box (the `box` importance map reads it): none yet.
ANNOTATED: tuple[str, ...] = ()
# aa: AutoAttack through torchattacks (the official PART evaluation); aa-standard: the authors'
# implementation (pyautoattack, RobustBench's evaluator). The default --eval is the official set.
# cam-info: PGD-20 restricted to the CAM's top, random and bottom pixels (utils/evaluation/cam_info.py); not a default.
EVALS = ("natural", "pgd20", "mma", "aa", "aa-standard", "cam-info")
DEFAULT_EVALS = ("natural", "pgd20", "mma", "aa")
AUTOATTACKS = ("aa", "aa-standard")
# How an attack evaluation seeds its random starts (utils.infra.rng): per image (the default) or per batch.
EVAL_SEEDINGS = ("image", "batch")
