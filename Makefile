# Two commands on a fresh machine: `make demo` and `make test`.
# Each creates .venv when it is missing (CPU torch pinned first, then avstan with dev extras).
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint clean browser

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/avstan demo --output runs/demo

# Headless Chromium renders the HTML reports in the tests (Debian's package; needs root).
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
	  >/dev/null 2>&1 || echo "could not install chromium: the HTML rendering test will skip"

# Fast suite plus the slow-marked tests; pytest exit code 5 (no tests collected) is not a failure.
test: $(STAMP) browser
	$(PY) -m pytest -q -m "slow or not slow"; rc=$$?; [ $$rc -eq 5 ] && exit 0; exit $$rc

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"; rc=$$?; [ $$rc -eq 5 ] && exit 0; exit $$rc

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) runs .pytest_cache
