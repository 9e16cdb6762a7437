# The two commands of the README: `make run` (the main job: grade the bundled
# example submissions) and `make test`. Each installs what it needs first
# (scripts/install.sh; only what is missing).

.PHONY: install run train test lint benchmark screenshots

install:
	@bash scripts/install.sh

run: install
	.venv/bin/softgrade grade-batch examples/submissions --workers 2 --out out/examples/grades.csv

train: install
	.venv/bin/softgrade train

test: install lint
	.venv/bin/python -m pytest

# The linter configured in pyproject.toml: unused names, import order, likely bugs.
lint: install
	.venv/bin/ruff check .

benchmark: install
	.venv/bin/python benchmarks/train_speed.py

# The README's pictures of the feedback page and the class report (docs/images/).
screenshots: install
	.venv/bin/python scripts/screenshots.py
