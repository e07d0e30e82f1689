# Two commands matter (README.md): `make run` and `make test`. Both install everything first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
UV_VERSION := 0.13.8
UV := .uv/bin/uv
BIN := .venv/bin
# uv uses exactly this interpreter and never downloads one.
export UV_PYTHON := $(PYTHON)
export UV_PYTHON_DOWNLOADS := never

.PHONY: install run test lint typecheck protos protos-check bench clean

$(UV):
	$(PYTHON) -m venv .uv
	.uv/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

.venv/.installed: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen
	touch $@

install: .venv/.installed

run: install
	$(BIN)/billing serve --migrate --seed-demo --with-invoicer

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/buf lint

typecheck: install
	$(BIN)/mypy src

protos: install
	$(BIN)/python scripts/protos.py generate

protos-check: install
	$(BIN)/python scripts/protos.py check

# pytest exits 5 when it collected no test: that is a failure here, not a pass.
test: lint typecheck protos-check
	$(BIN)/pytest; status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$status

bench: install
	@for bench in bench/*.py; do $(BIN)/python $$bench || exit 1; done

clean:
	rm -rf .venv .uv .mypy_cache .ruff_cache .pytest_cache .hypothesis
