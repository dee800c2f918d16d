"""Models in and out of the robustness ecosystem: RobustBench's zoo evaluated by our evaluations
(`robustbench.py`, `--eval-only robustbench:NAME`), and our checkpoints exported in RobustBench's layout
with a model_info JSON and a model card (`export.py`, `python -m exchange.export`)."""
