# Two commands matter: `make run` (the app on SQLite with demo data) and `make test` (everything CI runs).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: run test lint typecheck imports pytest bench bench-quick install dev chromium clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed pyproject.toml
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed
dev: $(VENV)/.installed-dev

run: install
	$(BIN)/fengqiao db upgrade
	$(BIN)/fengqiao demo --if-empty
	@echo ""
	@$(BIN)/python -c "from engine.services.demo import LOGINS_HELP; print(LOGINS_HELP)"
	@echo ""
	$(BIN)/fengqiao serve --host $(HOST) --port $(PORT)

# Debian's chromium drives the e2e tests (Playwright cannot download its own browser here);
# a CJK font makes the screenshots readable.
chromium:
	@{ command -v chromium >/dev/null 2>&1 && fc-list 2>/dev/null | grep -qi "wenquanyi\|noto sans cjk"; } || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null; \
	  else echo "e2e tests need Debian's chromium and a CJK font: sudo apt-get install chromium fonts-wqy-microhei"; exit 1; fi; }

lint: dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: dev
	$(BIN)/mypy

imports: dev
	$(BIN)/lint-imports

pytest: dev chromium
	$(BIN)/pytest -q -p no:cacheprovider

test: lint typecheck imports pytest

bench: dev
	$(BIN)/python -m bench

bench-quick: dev
	$(BIN)/python -m bench --quick

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
