"""The benchmark script runs end to end (on the CPU its times are not speed results)."""

from bench import bench
from tests.conftest import TINY_MODEL


def test_bench_prints_every_row(tiny_folder, capsys):
    # fp32 only: bf16 is emulated (9x slower) on CPUs without bf16 instructions; its training step is
    # tested in test_fast_paths.
    assert bench.main(["--data-dir", str(tiny_folder), "--model", TINY_MODEL, "--batch-size", "32",
                       "--device", "cpu", "--aa-subset", "4", "--train-subset", "40", "--precisions", "fp32"]) == 0
    out = capsys.readouterr().out
    assert "CPU (not a speed result)" in out
    for what in ("AT epoch", "PART epoch", "PART-T epoch", "PART-M epoch"):
        rows = [line.split("|") for line in out.splitlines() if line.startswith(f"| {what} |")]
        assert [r[2].strip() for r in rows] == ["fp32"] and all(float(r[4]) > 0 for r in rows)
        # The floor: positive, and × floor the epoch over it (each printed to 2 decimals: × floor lies
        # within the ratios that the rounding of the two times allows, rounded itself).
        for r in rows:
            seconds, floor, times = float(r[4]), float(r[5]), float(r[6])
            assert floor > 0 and times > 0.5
            low = (seconds - 0.005) / (floor + 0.005)
            high = (seconds + 0.005) / (floor - 0.005) if floor > 0.005 else float("inf")
            assert low - 0.006 <= times <= high + 0.006, (seconds, floor, times)
    for what in ("PGD-20 eval", "AutoAttack eval"):
        row = next(line for line in out.splitlines() if line.startswith(f"| {what} |")).split("|")
        assert float(row[4]) > 0
    assert "| AT epoch | fp32 | 40 |" in out and "| 48.5 | – |" in out     # no ratio for a subset on a small CNN
    assert "| PGD-20 eval | fp32 |" in out and "| – | – | 15.2 |" in out  # no floor for an evaluation
    assert "| AutoAttack eval | fp32 | 4 |" in out
