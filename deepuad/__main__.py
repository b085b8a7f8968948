from deepuad.cli import main

main()
