"""The studies' code that runs inside a training run: evaluations the runner does not need (cam-info,
map-info, road), registered with it by studies/evaluations.py, which the three scripts import."""
