"""The report's pictures speak words: each arm's legend names what differs in words, not as flag dumps."""
from pathlib import Path

from report.groups import arms, base_method, distinct_runs, load_runs

ROUND2 = Path(__file__).resolve().parents[2] / "results" / "cpu-study" / "round2"


def test_arm_legends_are_words_not_flag_dumps():
    runs, _ = distinct_runs(load_runs(sorted(str(p) for p in ROUND2.glob("*.json"))))
    labels = [label for base in {base_method(r) for r in runs}
              for label in arms([r for r in runs if base_method(r) == base])]
    assert len(labels) == 9
    assert all("=" not in label and "_" not in label for label in labels), labels
    assert "PART: mask rule top; ε on each image's top 21.76 % of the map" in labels
    assert any(label.startswith("AT-region: region budgets ul 6/255, ur 12/255") for label in labels)
