"""The stages behind the commands, one module per command: read artifacts, call the algorithm
(``deepuad.estimators``), write artifacts (``deepuad.artifacts``), return a JSON-able summary.
They do no printing and raise ``deepuad.errors`` exceptions that the CLI turns into exit codes, each
naming the parameters it is about by name (the CLI shows their options); long loops report through
``progress(description, completed, total)``.

- ``extract``, ``cluster``, ``train``, ``score``, ``merge_scores``, ``baseline``, ``evaluate``
  (with ``plots``), ``run`` (the first four into one folder), ``inspect``; ``answers`` (``top``,
  ``explain``) and ``report``: one per command
- ``_common``: what they share (paths, input checks, device and threads, ``run``'s skipping,
  loading a model)
- ``defaults``: the defaults of their own parameters that their commands offer as options, written
  once for both (standard library only)

A new command: a module here with one function, and its typer wrapper in ``deepuad.cli.commands``;
a default both give its option is written in ``defaults`` (tests/test_cli_options.py checks).
"""
