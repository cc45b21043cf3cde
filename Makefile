# Cocreatie Radar: `make demo` and `make test` each create .venv and install first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_PORT ?= 8765
DEMO_CONFIG := data/demo/radar-demo.toml

.PHONY: install demo demo-reset test bench notebooks notebooks-strip clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

install: $(VENV)/.installed

# Serve the bundled demo site on 127.0.0.1, run the real nightly job against it, show the status.
demo: install
	@$(BIN)/python -m pipeline.demo_site --host 127.0.0.1 --port $(DEMO_PORT) & server=$$!; \
	trap 'kill $$server 2>/dev/null' EXIT INT TERM; \
	for i in $$(seq 100); do \
	  $(BIN)/python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$(DEMO_PORT)/robots.txt', timeout=1)" 2>/dev/null && break; \
	  sleep 0.1; \
	done; \
	$(BIN)/radar --config $(DEMO_CONFIG) run; rc=$$?; \
	echo; $(BIN)/radar --config $(DEMO_CONFIG) status; \
	exit $$rc

demo-reset:
	rm -rf data/local/demo

# The browser tests drive Debian's chromium (never a browser downloaded by a test tool).
test: install
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python -m benchmarks.run_all

# Execute every notebook against the demo database (run `make demo` first) and keep HTML copies.
notebooks: install
	RADAR_DATABASE_URL=sqlite:///$(CURDIR)/data/local/demo/radar.db $(BIN)/jupyter nbconvert --to html --execute \
	  --output-dir data/local/notebooks notebooks/*.ipynb
	@echo "HTML copies in data/local/notebooks/"

# Notebooks are committed without outputs; run this before committing a changed notebook.
notebooks-strip: install
	$(BIN)/jupyter nbconvert --clear-output --inplace notebooks/*.ipynb

clean:
	rm -rf $(VENV) data/local .pytest_cache
