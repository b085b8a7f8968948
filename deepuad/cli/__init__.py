"""The ``deepuad`` command line: parse, call a stage, report.

- ``app``: the typer app, global options, progress and summaries, and ``main``, which turns
  every error into one line on stderr and an exit code (``deepuad.errors``; docs/exit-codes.md),
  each parameter an error names into the option that sets it; and ``entry``, the process's own
  ``main`` (no signal handling once the command is done)
- ``options``: the options several commands share, and those built from the parameter spec
- ``commands``: one module per command, each calling its stage in ``deepuad.stages``
- ``stdout``: standard output that ends the command cleanly when it cannot be written
"""

from deepuad.cli import commands  # noqa: F401  (registers the commands on the app)
from deepuad.cli.app import app, entry, main, strict_json  # noqa: F401
