"""Evaluation and reports: natural, PGD-20, MMA, AutoAttack, cam-info; the report over results JSONs and
the pictures."""
