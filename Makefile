# Two commands on a fresh machine:
#   make app    install what is needed and run the dashboard on the embedded graph
#   make test   install what is needed and run the test suite
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-$(shell cat pyproject.toml requirements.txt requirements-test.txt | md5sum | cut -c1-8)
PORT    ?= 8501
TEST_WORKERS ?= 2

.PHONY: app test install bench

$(STAMP): pyproject.toml requirements.txt requirements-test.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# the CPU wheel first, so nothing resolves torch to a multi-GB CUDA build
	$(BIN)/pip install -q torch==2.13.0
	# the project itself, editable, with its declared dependencies (pyproject.toml)
	$(BIN)/pip install -q -r requirements-test.txt
	rm -f $(VENV)/.installed-*; touch $@

install: $(STAMP)

app: install
	$(BIN)/python app.py --server.port $(PORT) --server.headless true

test: install
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
	  || echo "chromium not installable: the browser test will skip"
	# two workers, each test file whole in one of them (its module-scoped servers and graphs
	# are built once): the suite mostly waits on one core (browser, servers, fake Hub)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

bench: install
	$(BIN)/python -m bench.ingest
	$(BIN)/python -m bench.fit
	$(BIN)/python -m bench.retrieval
	$(BIN)/python -m bench.pages
