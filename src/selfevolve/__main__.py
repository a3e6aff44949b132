from selfevolve.cli import main

main()
