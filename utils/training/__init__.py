"""The trainer: epochs of `utils.method.recipe.train_batch`, checkpoints and their resumption, the side
outputs (learning curves, mask grids), the results record."""
