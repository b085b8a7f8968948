from deepuad.cli import entry

entry()
