"""`python -m forensics` runs the CLI."""

from forensics.cli import cli

cli(prog_name="forensics")
