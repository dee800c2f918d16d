"""`--eval cam-info`, `map-info` and `road` of the three scripts, registered with the runner
(runner.registry.STUDY_EVALS). Torch-free: the scripts import this module before they parse their flags;
the evaluations themselves (studies/cam_info.py, torch) are imported only when one runs."""
from __future__ import annotations

import argparse

from cam.maps import MAPS
from common.argtypes import Flag, number
from runner.registry import STUDY_EVALS, StudyEvaluation


def _cam_info(name: str):
    """studies.cam_info.<name>, imported when first called."""
    def call(*args, **kwargs):
        from studies import cam_info
        return getattr(cam_info, name)(*args, **kwargs)
    return call


def map_list(text: str) -> tuple[str, ...]:
    """--info-maps 'gradcam,gradient,box' -> the map names, each one of cam.maps.MAPS."""
    items = tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    bad = [t for t in items if t not in MAPS]
    if bad or not items:
        raise argparse.ArgumentTypeError(f"invalid --info-maps {text!r}: a comma list of {', '.join(MAPS)}")
    return items


# The share attacked by cam-info and map-info: 0.2176 is the share of full-budget elements the official
# rule gave in the CPU-scale study's PART runs (docs/studies.md), so the shares compare with PART's own.
SHARE = Flag("--cam-info-share", dict(type=number(high=1.0, low_open=True, high_open=True), default=0.2176,
                                      metavar="S", help="with --eval cam-info or map-info: the share of each image's "
                                      "pixels attacked (0.2176: PART's full-budget share in docs/studies.md's runs)"))
INFO_MAPS = Flag("--info-maps", dict(type=map_list, default=None, metavar="LIST",
                                     help="with --eval map-info or road: the maps measured, a comma list of --map "
                                          "names (default: the run's --map); on a dataset whose images carry a box "
                                          "also the pointing game and the IoU of each map's top share with it"))


def _maps_on_data(args, extras: tuple[str, ...]) -> str | None:
    """--info-maps naming a map that reads what the data do not carry (the box map on CIFAR-10)."""
    return next((f"--info-maps {m} {why}" for m in args.info_maps or ()
                 if (why := MAPS[m].refusal(args.data, extras))), None)


def _map_key(args) -> dict:
    return {"map_info": [list(args.info_maps or (args.cam,)), args.cam_info_share]}


STUDY_EVALS.update({
    "cam-info": StudyEvaluation(
        "CAM-info", _cam_info("counts"), _cam_info("cam_info_summary"), _cam_info("cam_info_lines"),
        key=lambda args: {"cam_info": [args.cam, args.low_epsilon, args.cam_info_share]},
        help="cam-info (PGD-20 on the CAM's top / random / bottom share of pixels: does the CAM point at what "
             "matters? docs in studies/cam_info.py)", flags=(SHARE,)),
    "map-info": StudyEvaluation(
        "Map-info", _cam_info("map_info_counts"), _cam_info("map_info_entry"), _cam_info("map_info_lines"),
        key=_map_key, help="map-info (the same for the maps of --info-maps, and where the data carry boxes the "
                           "pointing game and IoU)", flags=(SHARE, INFO_MAPS), check=_maps_on_data),
    "road": StudyEvaluation(
        "ROAD", _cam_info("road_sums"), _cam_info("road_entry"), _cam_info("road_lines"), key=_map_key,
        on_subset=True, help="road (the grad-cam package's ROAD metric of the same maps, on the --aa-subset images)",
        flags=(INFO_MAPS,), check=_maps_on_data),
})
