"""Evaluation: natural, PGD-20, MMA, AutoAttack, cam-info, the mask grids' pictures. `EvalSettings`: what an
evaluation reads, built once from the command line. (The report over results JSONs is report/.)"""
from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class EvalSettings:
    eval_epsilon: float          # the budget of PGD-20, MMA and AutoAttack
    step_size: float             # PGD-20's and MMA's step
    aa_subset: int | None        # AutoAttack on a fixed random subset of the test images
    eval_seeding: str            # each image's own stream (image) or each batch's (batch)
    cam: str                     # cam-info: the importance map (cam.maps.MAPS)
    low_epsilon: float           # cam-info: the official rule's low budget
    cam_info_share: float        # cam-info: the share of pixels attacked

    @classmethod
    def from_args(cls, args) -> "EvalSettings":
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls)})
