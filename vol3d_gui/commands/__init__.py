"""Headless `vol3d` subcommands: one module each, with add_arguments(parser) and run(args)."""
