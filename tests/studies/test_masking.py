"""The gradient-masking check (studies/masking.py): every attack on the run's AutoAttack images, the
worst case no better than any attack, the transfer attack from the model itself equal to its PGD-20."""
import json

import pytest

from studies.masking import ATTACKS, main
from tests.conftest import train


def test_masking_check_counts_every_attack_on_the_runs_images(tiny_folder, tmp_path, capsys):
    train(tiny_folder, tmp_path / "run", "--test-subset", "40", "--aa-subset", "8", "--threads", "1")
    ckpt = tmp_path / "run" / "epoch2.pt"
    out = tmp_path / "masking.json"
    assert main([str(ckpt), "--source", str(ckpt), "--data-dir", str(tiny_folder), "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    c = res["counts"]
    assert res["images"] == 8 and set(c) == set(ATTACKS) and not res["target"].startswith("/")
    assert c["worst"] <= min(c["pgd100x5"], c["apgd-ce"], c["apgd-t"]) and max(c.values()) == c["natural"]
    assert c["transfer"] == c["pgd20"]                # the model as its own source: white-box PGD-20
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:           # an existing --out is refused in one line
        main([str(ckpt), "--source", str(ckpt), "--data-dir", str(tiny_folder), "--out", str(out)])
    assert stop.value.code == 2 and capsys.readouterr().err.count("\n") == 1
