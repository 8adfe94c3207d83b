"""``python -m cupola.cli``."""

from cupola.cli.main import main

main()
