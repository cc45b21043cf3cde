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

# Serve the bundled demo site on 127.0.0.1, run the real nightly job against it, show the status, stop the site
# again and say what to do next. The demo config reads its feeds from data/local/demo/feeds.toml, written here
# with DEMO_PORT, so a later `radar --config data/demo/radar-demo.toml run` reads the port this served.
demo: install
	@mkdir -p data/local/demo; \
	sed 's/127\.0\.0\.1:8765/127.0.0.1:$(DEMO_PORT)/' data/demo/feeds.toml > data/local/demo/feeds.toml; \
	$(BIN)/python -m pipeline.demo_site --host 127.0.0.1 --port $(DEMO_PORT) >/dev/null & server=$$!; \
	trap 'kill $$server 2>/dev/null' EXIT INT TERM; \
	for i in $$(seq 100); do \
	  $(BIN)/python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$(DEMO_PORT)/robots.txt', timeout=1)" 2>/dev/null && break; \
	  sleep 0.1; \
	done; \
	echo "Demo news site (fictional outlets) on http://127.0.0.1:$(DEMO_PORT)/, stopped again after this run."; \
	$(BIN)/radar --config $(DEMO_CONFIG) run; rc=$$?; \
	echo; $(BIN)/radar --config $(DEMO_CONFIG) status; \
	echo; \
	echo "The failed feed (kanaalzone-sport: truncated XML) and the HTTP 500 (one Kanaalzone article) are"; \
	echo "scripted faults of the demo site, there to show how a run reports them (data/demo/README.md)."; \
	echo "To run it again later, serve the site on the same port and run with the demo config:"; \
	echo "  $(BIN)/python -m pipeline.demo_site --port $(DEMO_PORT) &  $(BIN)/radar --config $(DEMO_CONFIG) run"; \
	echo; \
	echo "Next: review the flagged articles in your browser, then write the digest of the accepted ones:"; \
	echo "  $(BIN)/radar --config $(DEMO_CONFIG) review --analyst ann"; \
	echo "  $(BIN)/radar --config $(DEMO_CONFIG) digest --since 2026-03-01 --format html --output digest.html"; \
	exit $$rc

demo-reset:
	rm -rf data/local/demo

# The browser tests drive Debian's chromium (never a browser downloaded by a test tool).
test: install
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)
	command -v java >/dev/null || (apt-get update && apt-get install -y default-jre-headless)  # the Nu HTML checker
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n 2 --dist loadfile  # two processes, each test file on one (its module fixtures once)

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
