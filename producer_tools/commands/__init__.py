"""One module per subcommand: ``NAME``, ``HELP``, ``add_arguments(parser)``, ``run(args, s)``."""
