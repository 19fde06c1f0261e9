# Python 3.12 where present (on PATH, or installed by pyenv but not selected), else python3.
PYTHON ?= $(shell for p in python3.12 $$HOME/.pyenv/versions/3.12*/bin/python3.12 python3; do \
	$$p -c 'import sys' 2>/dev/null && { echo $$p; break; }; done)
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: setup demo test test-slow bench lint clean docs docs-pages tutorials

$(BIN)/airinfer: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[test]'
	touch $@

setup: $(BIN)/airinfer

demo: setup
	$(BIN)/airinfer run ota_snr --quick --out results/ota_snr

# One process per core (at most 4: each holds some 3.5 GB), a file's tests together
# so that they share its compiled programs and trained fixtures.
test: setup
	$(BIN)/pytest -q -n auto --maxprocesses 4 --dist loadfile

test-slow: setup
	$(BIN)/pytest -q -m slow

bench: setup
	$(BIN)/python -m airinfer.benchmarks.bridge
	$(BIN)/python -m airinfer.benchmarks.train
	$(BIN)/python -m airinfer.benchmarks.ota
	$(BIN)/python -m airinfer.benchmarks.jscc
	$(BIN)/python -m airinfer.benchmarks.ldpc
	$(BIN)/python -m airinfer.benchmarks.allocator

lint: setup
	$(BIN)/ruff check .
	$(BIN)/lint-imports

# The documentation site (mkdocs.yml) into site/, every warning an error; the docs
# extra is installed on first use. The banner about MkDocs 2 is not a warning of ours.
DOCS_RESULTS := strategies_snr_full_jax table1_full oac_table1_full ota_privacy_full_dp \
	latency_bitrate_full link_ber_quick baseline_fashion_mnist strategies_budget_fashion_mnist \
	ota_connectivity_full_jax ota_snr_full_jax inversion_snr_full_jax train_digits \
	train_encoder_digits hybrid_snr_full_jax

$(BIN)/mkdocs: | $(BIN)/airinfer
	$(BIN)/pip install -e '.[docs]'

docs: $(BIN)/mkdocs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# The experiment pages, regenerated from the results folders present (commit them).
docs-pages: setup
	$(BIN)/python -m airinfer.experiments.report --docs docs \
		$(wildcard $(addprefix results/,$(DOCS_RESULTS)))

# The tutorials (tutorials/*.py, jupytext percent scripts) run as plain scripts on digits,
# their results under $(TUTORIALS_OUT); the figures they draw are copied into
# docs/tutorials/, where their documentation pages show them (commit them).
TUTORIALS_OUT ?= results/tutorials

tutorials: setup
	@set -e; for script in tutorials/*.py; do \
		echo "== $$script"; AIRINFER_TUTORIALS_OUT=$(TUTORIALS_OUT) $(BIN)/python $$script; \
	done
	find $(TUTORIALS_OUT) -name '*.png' -exec cp {} docs/tutorials/ \;

clean:
	rm -rf $(VENV) results site build/docs-tree
