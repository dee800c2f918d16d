"""PART's public API (docs/api.md): its example runs as it stands, the settings' defaults are the scripts',
and a plain loop written against the page alone trains the weights of train_eval_part*.py, bit for bit,
given the same seed and batches."""
import re

import pytest
import torch

from models.zoo import build_model
from part import PartSettings
from part.step import BASE_METHODS, lr_at, phases, train_batch
from tests.conftest import REPO, TINY_MODEL, tiny_argv


def plain_loop(images, labels, batches_of_epoch, seed: int, s: PartSettings, base: str, epochs: int) -> dict:
    """A training loop as a researcher writes it from docs/api.md: no import of the runner."""
    torch.manual_seed(seed)
    model = build_model(TINY_MODEL, num_classes=10)
    optimizer = torch.optim.SGD(model.parameters(), lr=s.lr, momentum=0.9, weight_decay=2e-4)
    warm_up, reweighted = phases(s, BASE_METHODS[base])
    for epoch in range(1, epochs + 1):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(s, epoch)
        phase = warm_up if epoch <= s.warm_up else reweighted
        model.train()
        for idx in batches_of_epoch[epoch - 1]:
            train_batch(phase, model, images[idx], labels[idx], optimizer)
    return model.state_dict()


def test_the_example_of_docs_api_runs_as_it_stands(capsys):
    """The page's code block, run as it is written in a namespace of its own (every name it uses is
    imported by the block itself; that the method imports nothing of the runner is tests/test_layout.py's)."""
    text = (REPO / "docs" / "api.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    with torch.random.fork_rng():
        exec(compile(code, str(REPO / "docs" / "api.md"), "exec"), {"__name__": "__main__"})
    out = capsys.readouterr().out
    assert "epoch 2 (part)" in out and "budget (64, 3, 32, 32)" in out


def test_the_settings_defaults_are_the_scripts():
    from runner.cli.args import get_args
    assert PartSettings() == PartSettings.from_args(get_args("part", []))
    assert PartSettings(beta=6.0) == PartSettings.from_args(get_args("part_t", []))


@pytest.mark.parametrize("script,base", [("part", "at"), ("part_t", "trades"), ("part_m", "mart")])
def test_a_plain_loop_trains_the_scripts_weights(tiny_folder, tmp_path, script, base):
    from runner.data.loaders import rank_batches
    from runner.data.sources import load_splits
    from runner.infra.checkpoint import load_checkpoint
    from runner.main import main
    from common.rng import Streams

    seed = 3
    argv = tiny_argv(tiny_folder, tmp_path, "--augmentation", "none", "--seed", str(seed), "--eval", "natural",
                     "--test-subset", "8")
    assert main(script, argv) == 0
    theirs = load_checkpoint(tmp_path / "epoch2.pt", torch.device("cpu"))["model"]
    # The script's images and batches (its shuffle of each epoch), handed to the loop as data.
    train, _ = load_splits("CIFAR10", tiny_folder, False, None, 8)
    images = torch.from_numpy(train.images).permute(0, 3, 1, 2).contiguous().float().div(255)   # NCHW, as collated
    labels = torch.from_numpy(train.labels)
    batches = [rank_batches(len(labels), 32, Streams(seed, torch.device("cpu")).seed("shuffle", e)) for e in (1, 2)]
    s = PartSettings(warm_up=1, num_steps=2, beta=0.0 if base == "at" else 6.0)     # tiny_argv's settings
    mine = plain_loop(images, labels, batches, seed, s, base, epochs=2)
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
