"""`python -m pipeline.cli`: the same as the `radar` command."""

from pipeline.cli import app

app()
