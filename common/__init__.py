"""The few low-level helpers the method needs and everything above it shares: `argtypes` (torch-free: the
one-line parser, the argparse types, `Flag`), `rng` (the counter-based random streams and every seed
constant), `errors` (torch-free: `UserError`, the one-line refusal)."""
