"""One module per ``fometa`` sub-command: ``add_arguments(parser)`` and ``run(args) -> int``; what they share
is in :mod:`fometa.commands.options`."""
