from bootstrap.cli.main import main

main()
