"""The `mos` command line."""
