"""The attacks (inner maximisations), one per module with the common call
`attack(model, x, y, epsilon, step_size, steps, start=, project=, ...)`, and the base methods'
objectives (outer minimisations) beside their attacks: pgd.py (PGD, AT's objective), mma.py,
trades.py (the TRADES attack and objective), mart.py (MART's objective), autoattack.py (torchattacks),
autoattack_standard.py (the authors'); common.py: the starts and projections they take."""
