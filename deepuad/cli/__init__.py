"""The ``deepuad`` command line: parse, validate, call a stage, report.

- ``app``: the typer app, global options, progress and summaries, and ``main``, which turns
  every error into one line on stderr and an exit code (``deepuad.errors``; docs/exit-codes.md), and
  ``entry``, the process's own ``main`` (no signal handling once the command is done)
- ``options``: option definitions several commands share (``run`` reuses the stages' own)
- ``commands``: one function per command, each calling its stage in ``deepuad.stages``
- ``answers``: ``top`` and ``explain`` (from scores to answers), and ``score --fail-above``'s checks
- ``report``: ``report`` (one HTML page about a scores file), and ``score --fail-on-drift``'s checks
"""

from deepuad.cli import commands  # noqa: F401  (registers the commands on the app)
from deepuad.cli.app import app, entry, main, strict_json  # noqa: F401
from deepuad.cli.answers import register as _register_answers
from deepuad.cli.report import register as _register_report

_register_answers(app)
_register_report(app)
