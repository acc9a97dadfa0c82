"""The command line: parse options, call the library, render results, turn errors into exits.

Only this package imports typer, rich and tqdm. One module per group of commands:
``common`` (the app, consoles, errors), ``train_cmd``, ``use_cmds`` (sample, score, eval),
``info_cmd``, ``tag_cmds`` (tag), ``classify_cmds`` (classify),
``tool_cmds`` (gradcheck, bench) and ``distance_cmds`` (gradients, pairs).
"""

# Imported for their commands, in the order --help lists them.
from . import train_cmd, use_cmds, info_cmd, tag_cmds, classify_cmds, tool_cmds, distance_cmds  # noqa: F401, I001
from ..heap import keep_freed_memory
from .common import app


def main() -> None:
    keep_freed_memory()   # every command allocates the same large arrays over and over
    app()


__all__ = ["app", "main"]
