"""The command line: parse options, call the library, render results, turn errors into exits.

Only this package imports typer, rich and tqdm. One module per group of commands:
``common`` (the app, consoles, errors), ``train_cmd``, ``use_cmds`` (sample, score, eval),
``info_cmd``, ``tag_cmds`` (tag), ``classify_cmds`` (classify),
``tool_cmds`` (gradcheck, bench) and ``distance_cmds`` (gradients, pairs).
"""

# Imported for their commands, in the order --help lists them.
from . import train_cmd, use_cmds, info_cmd, tag_cmds, classify_cmds, tool_cmds, distance_cmds  # noqa: F401, I001
from ..training.heap import keep_freed_memory
from .common import app, err
from ..training.mpienv import under_mpi, world_rank, world_size


def main() -> None:
    keep_freed_memory()   # every command allocates the same large arrays over and over
    if under_mpi():       # started by mpiexec -n N (N > 1): see charlm.training.distributed
        distributed_main(app)
    else:
        app()


def distributed_main(command) -> None:
    """Run the command on every rank of an MPI job; an error anywhere ends the whole job."""
    try:
        from ..training.distributed import run_guarded
    except (ImportError, RuntimeError) as e:   # no mpi4py, or it finds no MPI library
        if world_rank() == 0:
            err.print(f"Error: charlm was started by an MPI launcher ({world_size()} "
                      f"processes) but cannot use MPI ({e}). Install the extra: pip install "
                      "'charlm[mpi]', or run without mpiexec.", style="red")
        raise SystemExit(1) from None
    run_guarded(command)


__all__ = ["app", "main"]
