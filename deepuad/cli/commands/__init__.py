"""One module per command, each registering its command on the app (in the order ``deepuad --help``
lists them): parse the options, call the command's stage, print the answer."""

from deepuad.cli.commands import (  # noqa: F401
    extract, cluster, train, score, merge_scores, baseline, evaluate, run, inspect, top, explain, report,
)
