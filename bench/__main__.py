"""``python -m bench``: list the benchmark jobs, or run one with the shared set-up."""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

from .harness import BENCH, REPO, Harness, JobError
from .jobs import BY_NAME, JOBS


def common_options(p: argparse.ArgumentParser, defaults: bool = True) -> None:
    """The options every job takes (before the job's name, or after it for a job of the job
    modules). ``defaults=False``: leave an option out of the namespace unless given."""
    def add(*names, default=None, **kw):
        p.add_argument(*names, default=default if defaults else argparse.SUPPRESS, **kw)

    add("--out", default="bench-out", metavar="DIR",
        help="results: OUT/<job>.jsonl (every JSON line) and OUT/<job>.md (the tables)")
    add("--corpora", default=os.environ.get("CHARLM_CORPORA"), metavar="DIR",
        help="the benchmark corpora [default: $CHARLM_CORPORA]")
    add("--ref", default=os.environ.get("CHARLM_REF"), metavar="DIR",
        help="the folder with torch_ref.py, torch_quality.py, minchar_ref.py [default: "
             "$CHARLM_REF, else a bench folder beside the corpora]")
    add("--torch-python", default=os.environ.get("CHARLM_TORCH_PYTHON", sys.executable),
        metavar="PY", help="the Python that runs those reference scripts [default: this one]")
    add("--scale", type=float, default=1.0,
        help="multiply every time budget (e.g. 0.05 for a quick check of a job)")
    add("--cores", metavar="LIST",
        help="pin every process to these cores (taskset -c LIST) unless the job pins its own")
    add("--threads", type=int, metavar="N",
        help="BLAS/OpenMP threads of every process (OMP/OPENBLAS/MKL_NUM_THREADS)")
    add("--nice", type=int, default=0, metavar="N",
        help="run at this niceness (negative raises the priority, where allowed)")


def parse(argv: list[str]):
    """The job and the options of a command line (argparse's usage error, exit 2, for a job
    that does not exist or an option it does not take). ``list`` gives (None, options)."""
    top = argparse.ArgumentParser(
        prog="python -m bench", description="charlm's benchmark jobs (docs/benchmarks.md).",
        epilog="python -m bench list: the jobs; python -m bench NAME -h: a job's options.")
    common_options(top)
    top.add_argument("name", metavar="NAME", help="a job, or list")
    top.add_argument("args", nargs=argparse.REMAINDER, help="the job's options")
    a = top.parse_args(argv)
    if a.name == "list":
        return None, a
    job = BY_NAME.get(a.name)
    if job is None:
        top.error(f"no job {a.name!r}: python -m bench list shows them")
    if job.script:         # its options are the script's own, passed on as they are
        return job, a
    p = argparse.ArgumentParser(prog=f"python -m bench {job.name}",
                                description=(job.run.__doc__ or job.what).strip())
    common_options(p, defaults=False)
    if job.options:
        job.options(p)
    for k, v in vars(p.parse_args(a.args)).items():
        setattr(a, k, v)
    return job, a


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    job, a = parse(argv)
    if job is None:
        width = max(len(j.name) for j in JOBS)
        for j in JOBS:
            missing = j.script and not (BENCH / j.script.split()[0]).exists()
            print(f"{j.name:<{width}}  {j.what}" + ("  (not in this checkout)" if missing else ""))
        return 0
    if job.script:
        script = BENCH / job.script.split()[0]
        if not script.exists():
            print(f"Error: bench/{script.name} is not in this checkout.", file=sys.stderr)
            return 1
        h = harness(a, job.name, argv)
        cmd = h.argv([sys.executable, str(script), *job.script.split()[1:], *a.args])
        return subprocess.run(cmd, cwd=REPO, env=h.env()).returncode
    h = harness(a, job.name, argv)
    h.fresh()
    try:
        job.run(h, a)
    except JobError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    print(f"results: {h.path('.jsonl')} and {h.path('.md')}", file=sys.stderr)
    return 0


def harness(a, name: str, argv: list[str]) -> Harness:
    if a.nice:
        try:
            os.nice(a.nice)
        except PermissionError:
            raise SystemExit(f"Error: --nice {a.nice} is not allowed for this user. "
                             "Leave it out or give a positive value.") from None
    return Harness(job=name, out=Path(a.out), corpora=Path(a.corpora) if a.corpora else None,
                   ref=Path(a.ref) if a.ref else None, torch_python=a.torch_python,
                   scale=a.scale, cores=a.cores, threads=a.threads,
                   command=shlex.join(["python", "-m", "bench", *argv]))


if __name__ == "__main__":
    sys.exit(main())
