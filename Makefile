# Two commands on a fresh machine:  `make run` (service + console)  and  `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint bench browser-deps

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q -e '.[data,dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/jingwang serve

# Debian's chromium for the console's browser test (Playwright's own download cannot work
# offline); best effort: without it the browser test skips and says why.
browser-deps:
	@command -v chromium >/dev/null 2>&1 || (command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] \
		&& (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
		|| echo "chromium not installed: browser tests will skip")

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP) browser-deps lint
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python bench/normalize.py
	$(BIN)/python bench/scan.py
	$(BIN)/python bench/api.py
	$(BIN)/python bench/crawl.py
