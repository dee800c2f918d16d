"""Expected user mistakes: reported as one line on stderr with exit code 2, no traceback."""


class UserError(Exception):
    """Bad input that the user can fix (a flag, a path, a checkpoint)."""
