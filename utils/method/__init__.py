"""The method: PART's training step (`recipe.train_batch`: CAM → ε map → attack → objective → update)
and its tables — the base methods (`methods`), the mask rules (`rules`), the budget policies (`budgets`),
the losses (`losses`), and the decorations of the update (`awp`, and `graphs`: the attack as a CUDA graph)."""
