from optiq.cli.main import main

main()
