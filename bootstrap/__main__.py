from bootstrap.cli.main import run

run()
