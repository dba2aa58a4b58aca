# Two entry points for a fresh machine: `make demo` (set up + run the demo) and `make test`.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
PY := $(VENV)/bin/python
# torch/torchvision are pinned to the builds this machine's pip serves from disk (see README).
TORCH_PINS := torch==2.14.1 torchvision==0.29.1

# Debian packages the browser and database tests use (Chromium for page tests, PostgreSQL for
# the collection platform); installed when missing and we are root, as on CI.
SYSTEM_PACKAGES := chromium postgresql

.PHONY: setup system-deps demo test clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH_PINS)
	$(PY) -m pip install --quiet -e '.[all,test]' $(TORCH_PINS)
	touch $(STAMP)

setup: $(STAMP) system-deps

system-deps:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
		else echo "note: missing Debian packages ($$missing); their tests will skip"; fi; \
	fi

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(VENV)/bin/dermkit demo

test: $(STAMP) system-deps
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy src
	PYTHONPATH=src $(VENV)/bin/lint-imports
	HF_HUB_OFFLINE=1 $(PY) -m pytest

clean:
	rm -rf $(VENV) runs .pytest_cache
