# Two entry points: `make demo` (the main job on built-in synthetic data) and `make test`.
# Both create .venv and install the pinned dependencies if missing.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.dancenow-installed

.PHONY: venv demo test bench clean

$(STAMP): pyproject.toml requirements.lock requirements-nodeps.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.lock -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/dancenow demo -o outputs/demo

# The browser tests drive Debian's chromium (never a downloaded browser build); installed here when
# missing and possible (root with apt-get), else those tests skip and say why.
test: $(STAMP)
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium) \
		|| echo "chromium could not be installed: the browser tests will be skipped"
	$(PY) -m pytest -q -ra tests

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) outputs runs
