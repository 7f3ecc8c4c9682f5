"""The `umr` command-line interface."""
