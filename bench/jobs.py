"""The registry of benchmark jobs: one entry per job, what ``python -m bench list`` shows.

A job is either a function ``job(h, a)`` of the job modules (with a function that adds its own
options to the parser, or None), or a script in bench/ that runs as it is: ``python -m bench
NAME ARGS...`` runs ``bench/SCRIPT ARGS...`` with the harness's set-up (this checkout on
PYTHONPATH, --cores, --threads, --nice). Adding a job is adding a line here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from . import lm_jobs, longrange, mpi_jobs, task_jobs


@dataclass(frozen=True)
class Job:
    name: str
    what: str
    run: Callable | str            # a job function, or a script in bench/ (and its first args)
    options: Callable | None = None

    @property
    def script(self) -> str | None:
        return self.run if isinstance(self.run, str) else None


JOBS = [
    # language models: speed and quality
    Job("throughput", "charlm bench: train/eval/generate tokens/s on this machine",
        lm_jobs.throughput, lm_jobs.throughput_options),
    Job("speed", "charlm bench against PyTorch's torch_ref.py, row by row, alternated; ratios",
        lm_jobs.speed, lm_jobs.speed_options),
    Job("bound", "the time of only the matrix products a batch issues (a NumPy core's bound)",
        "product_bound.py"),
    Job("quality", "validation loss in a fixed time, charlm and PyTorch at once",
        lm_jobs.quality, lm_jobs.quality_options),
    Job("e2e", "evaluation as a user waits for it: charlm eval against PyTorch's",
        lm_jobs.e2e, lm_jobs.e2e_options),
    Job("e2e-rows", "validation loss with 32 rows, 1 row, 32 warmed rows (MODEL CORPUS)",
        "e2e_eval.py rows"),
    Job("same-init", "charlm and PyTorch trained step by step from the same weights",
        "same_init.py"),
    Job("starter-model", "the starter model's recipe (bench/starter_model.py)",
        "starter_model.py"),
    Job("starter-finetune", "validation loss after 60 s / 5 min from scratch and from the "
        "starter model", "starter_finetune.py"),
    Job("lm-quality", "the ten-minute race, WikiText-2 tied/untied, same-weights pairs "
        "(bench/lm_quality.py)", "lm_quality.py"),
    Job("task-defaults", "per-task defaults and --init-from against PyTorch's textbook models "
        "(bench/task_defaults.py)", "task_defaults.py"),
    # tagging
    Job("tag", "unidirectional and bidirectional taggers on BTC and WNUT-17; memory",
        task_jobs.tag),
    Job("tag-torch", "the PyTorch tagger on BTC and WNUT-17; training and tagging speed",
        task_jobs.tag_torch),
    Job("tag-speed", "tagging speed alone, charlm and PyTorch in turn",
        task_jobs.tag_speed),
    Job("charfeat", "word-only, + character words, + character-LM features",
        task_jobs.charfeat, task_jobs.charfeat_options),
    Job("charword-torch", "the character-word tagger in charlm and in PyTorch at once",
        task_jobs.charword_torch),
    Job("lmtext", "how much unlabelled text helps the LM features",
        task_jobs.lmtext, task_jobs.lmtext_options),
    Job("tag-run", "one charlm tagging run in a time budget (bench/tag_run.py)",
        "tag_run.py"),
    Job("torch-tagger", "one PyTorch tagging run in a time budget (bench/torch_tagger.py)",
        "torch_tagger.py"),
    Job("tag-speed-run", "one process's tagging speed (bench/tag_speed.py)", "tag_speed.py"),
    # classification
    Job("mr", "MR 10-fold: charlm word-level LSTMs; speed against PyTorch",
        task_jobs.mr, task_jobs.mr_options),
    Job("mr-mix", "MR 10-fold: charlm char-level BiLSTM; the PyTorch word-level BiLSTM",
        task_jobs.mr_mix, task_jobs.mr_options),
    Job("charlm-cv", "charlm's K-fold cross-validation of a classifier (bench/charlm_cv.py)",
        "charlm_cv.py"),
    Job("torch-classifier", "the same in PyTorch (bench/torch_classifier.py)",
        "torch_classifier.py"),
    Job("classify-speed", "a classifier's speed in charlm and PyTorch, alternated",
        "classify_speed.py"),
    # long range
    Job("longrange", "RNN, GRU, LSTM on WikiText-2: BLiMP pairs, gradients over distance",
        longrange.longrange, longrange.longrange_options),
    Job("longrange-report", "the tables and figure of both levels of longrange",
        longrange.longrange_report, longrange.report_options),
    Job("blimp-wikitext", "BLiMP rewritten in WikiText-2's spelling", "blimp_as_wikitext.py"),
    # MPI
    Job("mpi-ab", "one process x 2 threads against 2 ranks x 1 thread", mpi_jobs.mpi_ab,
        mpi_jobs.mpi_ab_options),
    Job("mpi-scaling", "1 to 8 ranks, strong and weak scaling (a many-core machine)",
        mpi_jobs.mpi_scaling, mpi_jobs.mpi_scaling_options),
    Job("mpi-train", "one training throughput measurement, under mpiexec or not",
        "mpi_train.py"),
]

BY_NAME = {j.name: j for j in JOBS}
