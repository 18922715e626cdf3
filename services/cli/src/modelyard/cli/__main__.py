"""`python -m modelyard.cli`, the same as the `modelyard` console script."""

from modelyard.cli.app import main

main()
