"""The trainer: epochs of `part.step.train_batch`, checkpoints and their resumption, the side
outputs (learning curves, mask grids), the results record."""
