from matsight.cli import main

main()
