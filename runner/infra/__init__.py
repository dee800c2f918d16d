"""Infrastructure the method does not see: checkpoints, SIGTERM / SIGINT, random streams, torchrun,
atomic files, provenance (commit, machine), the user-error type."""
