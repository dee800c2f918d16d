"""Round 3's picture of the positive control: canvas test images with their object box, a trained model's
CAM and input-gradient map, and the ε map each arm of the canvas study gives them.

    python -m report.canvas_maps CHECKPOINT --data-dir ../shared/data/cifar10-jpeg.zip -o results/cpu-study/round3/canvas_maps.png

The maps are the checkpoint model's (the arms' own models differ after the warm-up; this shows what each
rule does with one model's maps); every arm keeps ε on the box's share (56.25 %) of each image's pixels.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from experiments.runs import CANVAS_SHARE


def epsilon_maps(model, x, y, boxes, low: float, high: float = 8 / 255) -> dict:
    """Each canvas arm's (B, H, W) ε map of the images x: the top rule at the box's share over its map,
    and the uniform arm's mean budget."""
    import torch

    from cam.maps import MAPS, importance_map
    from cam.rules import budget_from, cam_upsampled, top_pixels
    size = x.shape[-1]
    noise = torch.rand(len(x), size, size, generator=torch.Generator().manual_seed(0))
    out = {}
    for label, name in (("box", "box"), ("inverse box", "inverse-box"), ("CAM top", "gradcam"),
                        ("gradient top", "gradient"), ("random", "random")):
        imp = importance_map(name, model, x, y, {"box": boxes}, noise if MAPS[name].draws else None)
        out[label] = budget_from(top_pixels(cam_upsampled(imp, size), CANVAS_SHARE)[:, 0], high, low)
    out["uniform"] = torch.full((len(x), size, size), CANVAS_SHARE * high + (1 - CANVAS_SHARE) * low)
    return out


def draw(checkpoint: str, data_dir: str, out: Path, images: int = 6, low: float = 4 / 255) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch
    from matplotlib.patches import Rectangle

    from cam.maps import importance_map
    from cam.rules import cam_upsampled
    from models.zoo import build_model
    from runner.data.sources import load_splits
    from runner.infra.checkpoint import load_checkpoint, load_model_state
    ckpt = load_checkpoint(checkpoint, torch.device("cpu"))
    model = build_model(ckpt["args"]["model"], 10)
    load_model_state(model, ckpt, checkpoint)
    model.eval()
    test = load_splits("CIFAR10-canvas", data_dir, test_subset=2000, need_train=False)[1]
    pick = torch.linspace(0, len(test) - 1, images).long()
    x = torch.from_numpy(test.images[pick.numpy()]).permute(0, 3, 1, 2).float() / 255
    y, boxes = torch.from_numpy(test.labels[pick.numpy()]), torch.from_numpy(test.extras["box"][pick.numpy()])
    cam = cam_upsampled(importance_map("gradcam", model, x, y), 32)[:, 0]
    grad = cam_upsampled(importance_map("gradient", model, x, y), 32)[:, 0]
    eps = epsilon_maps(model, x, y, boxes, low)
    columns = ["image and box", "GradCAM", "input gradient", *(f"ε: {k}" for k in eps)]
    fig, axes = plt.subplots(images, len(columns), figsize=(1.5 * len(columns), 1.5 * images + 0.5), squeeze=False)
    for i in range(images):
        picture = x[i].permute(1, 2, 0).numpy()
        t, l, b, r = boxes[i].tolist()
        panels = [(picture, None), (cam[i], "jet"), (grad[i], "jet"), *((e[i], "coolwarm") for e in eps.values())]
        for j, (ax, (data, cmap)) in enumerate(zip(axes[i], panels)):
            if cmap is None:
                ax.imshow(data)
            elif cmap == "jet":
                ax.imshow(picture)
                ax.imshow(data.numpy(), cmap="jet", alpha=0.5, vmin=0, vmax=1)
            else:
                ax.imshow(data.numpy(), cmap=cmap, vmin=low, vmax=8 / 255, interpolation="nearest")
            ax.add_patch(Rectangle((l - 0.5, t - 0.5), r - l, b - t, fill=False, edgecolor="white", linewidth=1))
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(columns[j], fontsize=7)
    fig.suptitle(f"CIFAR10-canvas: maps of {Path(checkpoint).parent.name}'s model; ε = 8/255 (red) on 56.25 % of "
                 f"the pixels, {255 * low:g}/255 (blue) elsewhere; white: the object's box", fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m report.canvas_maps", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint")
    p.add_argument("--data-dir", default="./data")
    p.add_argument("-o", "--out", type=Path, default=Path("results/cpu-study/round3/canvas_maps.png"))
    p.add_argument("--images", type=int, default=6)
    args = p.parse_args(argv)
    draw(args.checkpoint, args.data_dir, args.out, args.images)
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
