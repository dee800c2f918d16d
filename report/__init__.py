"""The report over results JSONs (`python -m report results/*.json -o results/`): `groups.py` (runs
grouped into arms, baselines, paired differences and their intervals), `tables.py` (the markdown
tables), `plots.py` (the pictures), `__main__.py` (the command)."""
