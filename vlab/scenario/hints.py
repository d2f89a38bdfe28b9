"""Second halves for YAML syntax errors whose usual cause is indentation.

PyYAML reports an indentation slip in parser terms ("expected <block end>, but found
'<block mapping start>'", "mapping values are not allowed here"), which says nothing to someone
who moved a key one space. The loader passes syntax errors through :func:`explain`, which keeps
the location and the parser's words and replaces the generic "fix the YAML syntax" with what to
look at.
"""

from __future__ import annotations

from vlab.scenario.errors import ScenarioError

INDENT_SYMPTOMS = (
    "expected <block end>",
    "mapping values are not allowed here",
    "did not find expected key",
    "did not find expected '-' indicator",
    "could not find expected ':'",
)


def _line(text: str, number: int) -> str:
    lines = text.splitlines()
    return lines[number - 1] if 0 < number <= len(lines) else ""


def explain(error: ScenarioError, text: str) -> ScenarioError:
    """``error`` with an indentation hint when its parser message is a typical symptom."""
    if not error.problem.startswith("invalid YAML"):
        return error
    line = _line(text, error.where.line)
    if "\\t" in error.problem or "\t" in line[: len(line) - len(line.lstrip())]:
        fix = "indent with spaces: YAML does not allow tabs for indentation"
    elif any(symptom in error.problem for symptom in INDENT_SYMPTOMS):
        fix = (
            "check the indentation of this line and the one before: keys of one mapping start "
            "in the same column, and a nested mapping is indented further than its key "
            "(a value on the key's own line needs a space after the ':')"
        )
    else:
        return error
    return ScenarioError(error.where, error.problem, fix)
