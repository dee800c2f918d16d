"""The benchmark script runs end to end (on the CPU its times are not speed results)."""
from bench import bench


def test_bench_prints_every_row(tiny_folder, capsys):
    assert bench.main(["--data-dir", str(tiny_folder), "--model", "smallcnn", "--batch-size", "32",
                       "--device", "cpu", "--aa-subset", "4"]) == 0
    out = capsys.readouterr().out
    assert "CPU (not a speed result)" in out
    for what in ("AT epoch", "PART epoch", "PART-T epoch", "PART-M epoch", "PGD-20 eval", "AutoAttack eval"):
        row = next(line for line in out.splitlines() if line.startswith(f"| {what} |"))
        assert float(row.split("|")[3]) > 0
    assert "| AT epoch | 80 |" in out and "| 48.5 | – |" in out     # no ratio for a subset on a small CNN
