"""The `modelyard` command line: one module per command or command group, assembled in `app`."""
