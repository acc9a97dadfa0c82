"""charlm's benchmark jobs, run from the repository root with the Python that has charlm (and
PyTorch, for the jobs that compare with it):

    python -m bench list                  the jobs, one line each
    python -m bench NAME [OPTIONS]        run one; python -m bench NAME -h for its options

The registry is bench/jobs.py; the set-up every job shares is bench/harness.py.
"""
