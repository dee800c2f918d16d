"""Expected user mistakes: reported as one line on stderr with exit code 2, no traceback."""


class UserError(Exception):
    """Bad input that the user can fix (a flag, a path, a checkpoint)."""


class NonFiniteLoss(Exception):
    """The training loss became NaN or infinite: the run stops (exit code 3), keeping the checkpoints
    written before that epoch."""

    def __init__(self, epoch: int, batch: int) -> None:
        super().__init__(f"non-finite training loss in epoch {epoch}, batch {batch}")
        self.epoch, self.batch = epoch, batch
