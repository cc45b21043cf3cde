# Cocreatie Radar: `make demo` and `make test` each create .venv and install first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_PORT ?= 8765
DEMO_CONFIG := data/demo/radar-demo.toml

.PHONY: install lock demo demo-reset test screenshots bench notebooks notebooks-strip clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The ranges are in pyproject.toml; constraints.txt pins the exact versions every install gets.
$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/activate
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test]"
	touch $@

install: $(VENV)/.installed

# Re-pin constraints.txt to the newest versions pyproject.toml's ranges allow (in a throw-away venv).
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet --upgrade pip
	.venv-lock/bin/python -m pip install --quiet ".[test]"
	{ sed -n '1,2p' constraints.txt; .venv-lock/bin/python -m pip freeze --exclude-editable | grep -v '^cocreatie-radar'; } > constraints.new
	mv constraints.new constraints.txt && rm -rf .venv-lock build

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
# The PostgreSQL tests start a throw-away cluster with Debian's server; a skipped browser or postgres test fails
# the run (tests/conftest.py; RADAR_ALLOW_SKIPS=1 on a machine without them).
test: install
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)
	command -v java >/dev/null || (apt-get update && apt-get install -y default-jre-headless)  # the Nu HTML checker
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || (apt-get update && apt-get install -y postgresql)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -n 2 --dist loadfile  # two processes, each test file on one (its module fixtures once)

# Tests write their screenshots to a temporary folder; this refreshes the README's images in docs/ on purpose.
screenshots: install
	RADAR_SCREENSHOT_DIR=$(CURDIR)/docs $(BIN)/python -m pytest -q -p no:cacheprovider \
	  tests/test_review_browser.py tests/test_digest.py tests/test_submissions.py -k "keyboard_review_flow or chromium_and_screenshot or reader_submits_analyst_accepts"

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
