"""``python -m kathikon`` is the ``kathikon`` command."""

from kathikon.cli import main

main()
