"""The test suite (a package, so that `tests` is this folder also where another distribution installs a
top-level `tests` package into site-packages, as robustbench 1.1.1 does)."""
