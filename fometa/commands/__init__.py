"""One module per ``fometa`` sub-command: ``add_arguments(parser)`` and ``run(args) -> int``."""
