# lstmkit — the two commands a new user runs: `make demo` and `make test`.
# Each builds .venv from nothing when it is missing (pinned by constraints.txt), then does its job.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test test-slow yardsticks bench lint venv browser screenshots clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt setuptools
	$(BIN)/pip install --quiet --disable-pip-version-check --no-build-isolation -c constraints.txt -e '.[dev,peers,hf]'
	touch $(STAMP)

# The seeds' example by hand (in the terminal, and as a web page), the vanishing-gradient table, then a tanh
# RNN, an LSTM and an xLSTM trained on the adding problem (T = 100) under one budget: a table, learning
# curves in runs/compare-adding*/.
demo: $(STAMP)
	$(BIN)/lstmkit walkthrough
	mkdir -p runs
	$(BIN)/lstmkit walkthrough --format html -o runs/walkthrough.html
	$(BIN)/lstmkit gradients
	$(BIN)/lstmkit compare --task adding --task-arg length=100 --models rnn lstm xlstm:ms --hidden-size 64 --steps 1200

# The page tests drive Debian's Chromium through Playwright (pointed at /usr/bin/chromium; no tool downloads
# a browser of its own). Installed here when missing.
browser:
	@command -v chromium >/dev/null 2>&1 || { echo "installing Debian's chromium for the page tests"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

test: $(STAMP) browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q -m "not slow"

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -s -m slow

# The formal-language table (README "Formal languages"): every model family on the Chomsky-hierarchy tasks, two
# cells at a time on one thread each, into runs/yardsticks/formal/ (table.md, table.png); cells already there are
# kept, so an interrupted run resumes. About 2½ hours on 2 cores (88 cells, 284 CPU-minutes; the README has
# the figures).
yardsticks: $(STAMP)
	$(BIN)/python -m lstmkit.yardsticks formal --workers 2

# The benchmark suite: our layers against torch.nn and the xLSTM authors' kernels (installed by the venv's
# `peers` extra, torch held at the pinned version), tables on screen, results in runs/bench/.
bench: $(STAMP)
	$(BIN)/lstmkit bench

# The README's pictures, remade from real runs (docs/screenshots.py says which and how).
screenshots: $(STAMP) browser
	$(BIN)/python docs/screenshots.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
