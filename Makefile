# The two commands of the README: `make demo` runs the hive, `make test` runs every test.
.PHONY: demo test lint bench clean

demo:
	@scripts/bootstrap
	@scripts/demo

test:
	@scripts/bootstrap
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	HIVE_CI=1 .venv/bin/pytest -q    # a skip fails here unless docs/testing.md allows it

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy

bench:
	@scripts/bootstrap
	.venv/bin/python -m bench.broker

clean:
	rm -rf .venv .demo .pytest_cache .mypy_cache .ruff_cache
