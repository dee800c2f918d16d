"""`--eval cam-info`, `map-info` and `road` of the three scripts, registered with the runner
(runner.registry.STUDY_EVALS). Torch-free: the scripts import this module before they parse their flags;
the evaluations themselves (studies/cam_info.py, torch) are imported only when one runs."""
from __future__ import annotations

from runner.registry import STUDY_EVALS, StudyEvaluation


def _cam_info(name: str):
    """studies.cam_info.<name>, imported when first called."""
    def call(*args, **kwargs):
        from studies import cam_info
        return getattr(cam_info, name)(*args, **kwargs)
    return call


def _map_key(args) -> dict:
    return {"map_info": [list(args.info_maps or (args.cam,)), args.cam_info_share]}


STUDY_EVALS.update({
    "cam-info": StudyEvaluation(
        "CAM-info", _cam_info("counts"), _cam_info("cam_info_summary"), _cam_info("cam_info_lines"),
        key=lambda args: {"cam_info": [args.cam, args.low_epsilon, args.cam_info_share]},
        help="cam-info (PGD-20 on the CAM's top / random / bottom share of pixels: does the CAM point at what "
             "matters? docs in studies/cam_info.py)"),
    "map-info": StudyEvaluation(
        "Map-info", _cam_info("map_info_counts"), _cam_info("map_info_entry"), _cam_info("map_info_lines"),
        key=_map_key, help="map-info (the same for the maps of --info-maps, and where the data carry boxes the "
                           "pointing game and IoU)"),
    "road": StudyEvaluation(
        "ROAD", _cam_info("road_sums"), _cam_info("road_entry"), _cam_info("road_lines"), key=_map_key,
        on_subset=True, help="road (the grad-cam package's ROAD metric of the same maps, on the --aa-subset images)"),
})
