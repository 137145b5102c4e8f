"""The ``xpusim`` command line: :mod:`.main` builds the parser and maps errors to exit codes;
:mod:`.commands` holds the single-scenario commands, and each study command (compare, sweep,
plan, sensitivity) has its own ``*_cmd`` module with ``register`` and its handler."""
