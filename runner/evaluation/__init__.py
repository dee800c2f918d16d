"""Evaluation: natural, PGD-20, MMA, AutoAttack, and the evaluations a study registers (runner.registry
.STUDY_EVALS: cam-info, map-info, road from studies/); the mask grids' pictures. `EvalSettings`: what an
evaluation reads, built once from the command line. (The report over results JSONs is report/.)"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

from runner.registry import study_flags


@dataclass(frozen=True)
class EvalSettings:
    eval_epsilon: float          # the budget of PGD-20, MMA and AutoAttack
    step_size: float             # PGD-20's and MMA's step
    aa_subset: int | None        # AutoAttack on a fixed random subset of the test images
    eval_seeding: str            # each image's own stream (image) or each batch's (batch)
    cam: str                     # the run's importance map (cam.maps.MAPS), for the studies' evaluations
    low_epsilon: float           # the run's low budget, for the same
    study: dict = field(default_factory=dict)   # the studies' evaluation flags by name (runner.registry.study_flags)

    @classmethod
    def from_args(cls, args) -> "EvalSettings":
        values = {f.name: getattr(args, f.name, None) for f in fields(cls) if f.name != "study"}
        return cls(**values, study={f.dest: getattr(args, f.dest, None) for f, _ in study_flags()})
