"""Bringup for sefm: launch files, configs and the `sefm` command line."""
