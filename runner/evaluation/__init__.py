"""Evaluation: natural, PGD-20, MMA, AutoAttack, and the evaluations a study registers (runner.registry
.STUDY_EVALS: cam-info, map-info, road from studies/); the mask grids' pictures. `EvalSettings`: what an
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
    cam_info_share: float        # cam-info, map-info: the share of pixels attacked
    info_maps: tuple[str, ...]   # map-info: the maps measured (cam.maps.MAPS)

    @classmethod
    def from_args(cls, args) -> "EvalSettings":
        values = {f.name: getattr(args, f.name, None) for f in fields(cls)}
        values["info_maps"] = tuple(values["info_maps"] or (args.cam,))
        return cls(**values)
