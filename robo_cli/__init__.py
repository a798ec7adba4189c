"""The ``robo-stack`` command line: the top layer, above every other robo_stack package.

:mod:`robo_cli.main` builds one parser from the subcommands each package's ``cli`` module
contributes (their registration functions are listed there, by name, in help order).
"""
