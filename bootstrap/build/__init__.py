"""The build: recipe, plan, the step list, download and the generic steps (accounts, files,
linker cache, scriptless stand-ins, foreign architectures)."""
