# Two commands on a fresh machine: `make demo` and `make test`. Each makes its own virtual
# environment in .venv (Python 3.10+ and the package registries are all they need).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# PyTorch is optional: where its CPU wheel lies on this machine's disk, the reference tests use
# it; nothing is downloaded for it (--no-index), so elsewhere those tests skip.
TORCH_WHEELS ?= /opt/wheels

.PHONY: demo test clean mpi-demo

$(BIN)/charlm: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@if ls $(TORCH_WHEELS)/torch-2.13.0* >/dev/null 2>&1; then \
	  $(BIN)/pip install --quiet --find-links $(TORCH_WHEELS) torch==2.13.0 \
	    || echo "PyTorch not installed: its reference tests will be skipped."; \
	else echo "No PyTorch wheel on this machine: its reference tests will be skipped."; fi
	touch $(BIN)/charlm

# The suite, then the shape of the code: lint (ruff) and the layers contract (import-linter,
# configured in pyproject.toml: imports only go down text -> nn -> tasks -> training -> use).
test: $(BIN)/charlm
	$(BIN)/python -m pytest -q
	$(BIN)/ruff check charlm tests bench
	cd $(CURDIR) && $(BIN)/lint-imports

demo: $(BIN)/charlm
	@mkdir -p demo-out
	cd demo-out && ../$(BIN)/charlm train --cell lstm --hidden 128 --embed 32 --layers 1 \
	  --dropout 0 --batch 32 --bptt 64 --lr 3e-3 --time 90s --eval-every 200 --force
	cd demo-out && ../$(BIN)/charlm sample --level char -n 3 --length 300 --no-stop --seed 1
	@echo "The model just trained (90 s of tiny Shakespeare):"
	cd demo-out && ../$(BIN)/charlm score "the apple and pair salad" "the apple and pear salad"
	@echo "The starter model that ships with charlm (English prose from Project Gutenberg):"
	cd demo-out && ../$(BIN)/charlm score --model starter \
	  "the apple and pair salad" "the apple and pear salad"

# Data-parallel training on MPI_N processes (the optional extra: mpi4py and MPICH's wheel).
MPI_N ?= 2
mpi-demo: $(BIN)/charlm
	$(BIN)/pip install --quiet -e '.[mpi]'
	@mkdir -p demo-out
	cd demo-out && ../$(BIN)/mpiexec -n $(MPI_N) ../$(BIN)/charlm train --cell lstm \
	  --hidden 128 --embed 32 --layers 1 --dropout 0 --batch 32 --bptt 64 --lr 3e-3 --time 60s \
	  --eval-every 200 --force --out mpi.npz
	cd demo-out && ../$(BIN)/charlm sample --model mpi.npz -n 2 --length 200 --no-stop --seed 1

clean:
	rm -rf $(VENV) demo-out build *.egg-info
