"""Smoke run on real data (the shared JPEG CIFAR-10 zip, read in place)."""


from tests.conftest import REAL_EPOCHS, REAL_WARM_UP


def test_part_learns_on_real_cifar10(real_run):
    results, out = real_run
    assert results["epochs_done"] == REAL_EPOCHS and results["test_images"] == 500
    phases = ["warm-up"] * REAL_WARM_UP + ["part"] * (REAL_EPOCHS - REAL_WARM_UP)
    assert [r["phase"] for r in results["history"]] == phases
    assert results["natural"] > 20.0                      # chance is 10%
    assert results["pgd20"] < results["natural"]
    assert all(0.0 < r["full_budget_fraction"] < 1.0 for r in results["history"][REAL_WARM_UP:])
    assert (out / f"epoch{REAL_EPOCHS}.pt").exists() and (out / "results.json").exists()
