"""What every benchmark job shares: where things are, how each process is started (its cores,
its BLAS threads, the environment both charlm and PyTorch run in), and one way to record and
print results.

A job is a function ``job(h, a)``: ``h`` is the :class:`Harness` built from the common options,
``a`` the job's own options. It starts processes with ``h.run`` (one at a time) or
``h.start`` / ``h.wait`` (several at once), each with its own ``cores`` and ``threads``; every
JSON line a process prints is returned parsed and recorded in ``OUT/<job>.jsonl``; the job's
figures go through ``h.table`` (a Markdown table, printed and appended to ``OUT/<job>.md``
under a header that says when, on which machine, at which commit and with which command).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

# The larger corpora the jobs read (--corpora, or CHARLM_CORPORA), relative to that folder.
TAGGING = {"btc": ("tagging/btc/btc.train", "tagging/btc/btc.dev"),
           "wnut17": ("tagging/wnut17/wnut17train.conll", "tagging/wnut17/emerging.dev.conll")}
MR = ("classify/mr/rt-polarity.pos", "classify/mr/rt-polarity.neg")


class JobError(Exception):
    """A job cannot run as asked (a missing folder, a process that failed): one line."""


@dataclass
class Harness:
    """The common options of ``python -m bench`` and what a job does with them."""

    job: str
    out: Path
    corpora: Path | None = None
    ref: Path | None = None
    torch_python: str = sys.executable
    scale: float = 1.0
    cores: str | None = None
    threads: int | None = None
    command: str = ""
    stem: str = ""                          # results file name; the job's name by default
    _header_written: set = field(default_factory=set)

    # ---------------------------------------------------------------- where things are
    def corpus(self, relative: str) -> str:
        """A path in the benchmark corpora folder, which must exist."""
        if self.corpora is None:
            raise JobError(f"python -m bench {self.job} reads the benchmark corpora: give "
                           "--corpora DIR or set CHARLM_CORPORA (see docs/benchmarks.md).")
        p = self.corpora / relative
        if not p.exists():
            raise JobError(f"{p} is not there: --corpora must name the folder that holds "
                           f"{relative} (see docs/benchmarks.md).")
        return str(p)

    def tagging(self, name: str) -> tuple[str, str]:
        """The (train, dev) files of a tagging corpus: btc or wnut17."""
        train, dev = TAGGING[name]
        return self.corpus(train), self.corpus(dev)

    def reference(self, script: str) -> str:
        """One of the standalone PyTorch reference scripts (torch_ref.py, torch_quality.py,
        minchar_ref.py): in --ref, CHARLM_REF, or a ``bench`` folder beside the corpora."""
        where = self.ref or (self.corpora.parent / "bench" if self.corpora else None)
        if where is None or not (where / script).exists():
            raise JobError(f"python -m bench {self.job} needs the reference script {script}: "
                           "give --ref DIR or set CHARLM_REF to the folder that holds it.")
        return str(where / script)

    @staticmethod
    def script(name: str) -> str:
        return str(BENCH / name)

    def py(self, script: str, *args) -> list[str]:
        """A bench/ script run by this Python (the one with charlm and PyTorch)."""
        return [sys.executable, self.script(script), *map(str, args)]

    def charlm(self, *args) -> list[str]:
        return [sys.executable, "-m", "charlm", *map(str, args)]

    def scaled(self, seconds: float, least: float = 1) -> float:
        """A budget times --scale (for a quick check of a job), at least ``least``."""
        return max(least, round(seconds * self.scale, 1))

    # ---------------------------------------------------------------- processes
    def env(self, threads: int | None = None, **extra) -> dict:
        """This repository first on PYTHONPATH; BLAS/OpenMP threads set when asked for."""
        env = {**os.environ, **{k: str(v) for k, v in extra.items()}}
        env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"]
                                         if env.get("PYTHONPATH") else "")
        n = threads if threads is not None else self.threads
        if n is not None:
            env.update({v: str(n) for v in THREAD_VARS})
        return env

    def argv(self, cmd: list, cores: str | None = None) -> list[str]:
        """The command, pinned with taskset to ``cores`` (or --cores) where given."""
        cores = cores if cores is not None else self.cores
        cmd = [str(c) for c in cmd]
        if not cores:
            return cmd
        if shutil.which("taskset") is None:
            raise JobError("pinning to cores needs taskset (util-linux); leave out --cores.")
        return ["taskset", "-c", cores, *cmd]

    def start(self, cmd: list, *, cores: str | None = None, threads: int | None = None,
              stderr=None, env: dict | None = None, cwd: str | None = None) -> "Running":
        """Start a process (stdout to a temporary file, read by :meth:`wait`)."""
        argv = self.argv(cmd, cores)
        sink = tempfile.TemporaryFile("w+", encoding="utf-8")
        proc = subprocess.Popen(argv, stdout=sink, stderr=stderr, cwd=cwd or REPO,
                                env=env or self.env(threads), text=True)
        return Running(proc, sink, argv)

    def wait(self, running: "Running", timeout: float | None = None,
             record: bool = True, echo: bool = True) -> list[dict]:
        """Wait for a process; its JSON lines, parsed (and recorded). Past ``timeout`` it is
        stopped, and what it printed until then is kept with a ``{"cut_off": true}`` line."""
        timer = threading.Timer(timeout, running.proc.kill) if timeout else None
        if timer:
            timer.start()
        code = running.proc.wait()
        if timer:
            timer.cancel()
        running.sink.seek(0)
        text = running.text = running.sink.read()
        running.sink.close()
        cut = timer is not None and code == -9
        if code and not cut:
            sys.stdout.write(text)
            raise JobError(f"{shlex.join(running.argv)} failed with exit code {code}.")
        lines = [json.loads(x) for x in text.splitlines() if x.startswith("{")]
        if cut:
            lines.append({"cut_off": True, "command": shlex.join(running.argv)})
        if echo:
            for x in text.splitlines():
                if not x.startswith("{"):
                    print(x, flush=True)
        for x in lines:
            if echo:
                print(json.dumps(x), flush=True)
            if record:
                self.record(x)
        return lines

    def run(self, cmd: list, *, cores: str | None = None, threads: int | None = None,
            timeout: float | None = None, record: bool = True, echo: bool = True,
            stderr=None, env: dict | None = None, cwd: str | None = None) -> list[dict]:
        """Run one process to its end; its JSON lines, parsed and recorded."""
        return self.wait(self.start(cmd, cores=cores, threads=threads, stderr=stderr, env=env,
                                    cwd=cwd), timeout, record, echo)

    # ---------------------------------------------------------------- results
    def path(self, suffix: str) -> Path:
        self.out.mkdir(parents=True, exist_ok=True)
        return self.out / f"{self.stem or self.job}{suffix}"

    def record(self, obj: dict) -> None:
        with open(self.path(".jsonl"), "a", encoding="utf-8") as f:
            f.write(json.dumps(obj) + "\n")

    def fresh(self) -> None:
        """Start this job's results files anew."""
        for suffix in (".jsonl", ".md"):
            self.path(suffix).unlink(missing_ok=True)

    def machine(self) -> str:
        """The machine as ``charlm bench`` reports it, seen from a process started with this
        job's --cores and --threads."""
        lines = self.run([sys.executable, "-c", "import json; from charlm.use.bench import "
                          "describe_machine as d, machine_info as m; "
                          "print(json.dumps({'machine': d(m())}))"], record=False, echo=False)
        return lines[-1]["machine"]

    def say(self, text: str = "") -> None:
        """A line of the summary: printed, and kept in OUT/<job>.md."""
        md = self.path(".md")
        if md not in self._header_written:
            self._header_written.add(md)
            now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
            with open(md, "a", encoding="utf-8") as f:   # a table's record: when, where, how
                f.write(f"{now} · commit {commit()} · {self.machine()} · `{self.command}`\n\n")
        print(text, flush=True)
        with open(md, "a", encoding="utf-8") as f:
            f.write(text + "\n")

    def table(self, rows: list[dict], columns: list["Col"], title: str = "") -> None:
        """The one summary printer: a Markdown table of ``rows`` with ``columns``."""
        if title:
            self.say(title)
            self.say()
        for line in markdown_table(rows, columns):
            self.say(line)
        self.say()


@dataclass
class Running:
    proc: subprocess.Popen
    sink: object
    argv: list
    text: str = ""                 # all it printed, once waited for


@dataclass
class Col:
    """A table column: its header, the cell of a row, right-aligned unless ``left``."""

    header: str
    cell: Callable[[dict], object]
    left: bool = False


def markdown_table(rows: list[dict], columns: list[Col]) -> list[str]:
    """Rows of dicts as a Markdown table; a cell that raises KeyError or gives None is blank."""
    def cell(c: Col, r: dict) -> str:
        try:
            v = c.cell(r)
        except (KeyError, TypeError, ZeroDivisionError):
            v = None
        return "" if v is None else str(v)

    out = ["| " + " | ".join(c.header for c in columns) + " |",
           "|" + "|".join("---" if c.left else "---:" for c in columns) + "|"]
    out += ["| " + " | ".join(cell(c, r) for c in columns) + " |" for r in rows]
    return out


def pct(x: float | None, digits: int = 2) -> str | None:
    """A fraction as per cent, e.g. 0.6693 -> '66.93'."""
    return None if x is None else f"{100 * x:.{digits}f}"


def num(x: float | None, digits: int = 0) -> str | None:
    """A number with thousands separators."""
    return None if x is None else f"{x:,.{digits}f}"


def median(values) -> float:
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


# ---------------------------------------------------------------- the record of a sitting
def commit() -> str:
    """The checkout's commit, and whether it has changes not committed."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True,
                              text=True).stdout.strip()
    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return head + (" with uncommitted changes" if dirty else "")
