"""The project against its own copy of the starting contract (docs/design.md,
docs/assignment.md): the part ids, the commands, the layout and the rules of credit it
fixes are what the code has."""

import re
from pathlib import Path

from grader.cli import COMMANDS
from grader.hidden.manifest import PARTS
from grader.notebook import find_parts, read_notebook

ROOT = Path(__file__).resolve().parents[1]
DESIGN = (ROOT / "docs" / "design.md").read_text()
ASSIGNMENT = (ROOT / "docs" / "assignment.md").read_text()
SOURCE = ROOT / "assignments" / "softmax_regression" / "softmax_regression.ipynb"


def contract_parts():
    """The part ids in the first column of the assignment's tables."""
    return re.findall(r"^\| `(\w+)` \|", ASSIGNMENT, flags=re.MULTILINE)


def test_every_part_of_the_contract_is_in_the_notebook_and_the_manifest():
    parts = {part.id for part in find_parts(read_notebook(SOURCE))}
    auto = set(contract_parts())
    written = {f"ex{k}_written" for k in range(1, 6)}
    assert auto and auto <= parts and written <= parts
    assert set(PARTS) == auto


def test_the_manifests_functions_are_the_contracts():
    """Each function the manifest gives a part is named in that part's row of the contract."""
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `(\w+)` \|(.*)$", ASSIGNMENT,
                                                        flags=re.MULTILINE)}
    for part_id, spec in PARTS.items():
        named = set(re.findall(r"`(?:class )?(\w+)\(", rows[part_id]))
        assert set(spec.functions) <= named, (part_id, spec.functions, named)


def test_every_command_of_the_design_exists():
    named = set(re.findall(r"^- `softgrade ([\w-]+)", DESIGN, flags=re.MULTILINE))
    assert named and named <= set(COMMANDS)


def test_the_fixed_top_level_layout_exists():
    fixed = re.findall(r"^\| `([\w./<>-]+?)/?` \|", DESIGN, flags=re.MULTILINE)
    for path in fixed:
        assert (ROOT / path.split("/<")[0]).exists(), path


def test_the_from_scratch_rule_names_the_contracts_functions():
    rule = re.search(r"^- From scratch.*?(?=^- |\Z)", ASSIGNMENT, re.MULTILINE | re.DOTALL)[0]
    named = set(re.findall(r"`(\w+)`", rule))
    assert named == {f for spec in PARTS.values() for f in spec.forbidden}
