"""The report's outputs: the arm pictures' legends in words, not flag dumps; the F-test of Figure 1's quadrant."""
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


def test_the_block_f_test_of_two_treatments_is_the_paired_t_test():
    """A randomised-block ANOVA of two treatments is the paired t-test: F = t², the same p."""
    import statistics

    from report.groups import block_f_test, t_p_value
    a, b = [41.1, 40.85, 40.65, 40.95, 41.7], [41.85, 41.7, 41.6, 41.85, 41.2]
    d = [x - y for x, y in zip(a, b)]
    t = statistics.mean(d) / (statistics.stdev(d) / len(d) ** 0.5)
    f, df1, df2, p = block_f_test([a, b])
    assert (df1, df2) == (1, 4) and abs(f - t * t) < 1e-9 and abs(p - t_p_value(d)) < 1e-9


def test_round2_table_gives_figure1s_quadrant_f_test():
    text = (ROUND2 / "table.md").read_text()
    assert "quadrant effect, seeds as blocks: F(3, 9) = 2.15, p = 0.16" in text
