"""Notebook cells in nbgrader's schema (cell metadata "nbgrader", schema_version 3).

Solution cells ("solution": true) hold the answer, either whole or between `### BEGIN SOLUTION`
and `### END SOLUTION`; grade cells ("grade": true, "grade_id", "points") are the check cells;
locked cells ("locked": true) are not for learners to edit. This module strips solutions and
compares a submission's locked cells with the released ones.
"""
import re

import nbformat

CODE_PROMPT = "# YOUR CODE HERE\nraise NotImplementedError()"
TEXT_PROMPT = "YOUR ANSWER HERE"
_REGION = re.compile(r"^([ \t]*)### BEGIN SOLUTION[ \t]*\n.*?^[ \t]*### END SOLUTION[ \t]*$",
                     re.M | re.S)
_HIDDEN_TESTS = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS.*?^[ \t]*### END HIDDEN TESTS[ \t]*\n?",
                           re.M | re.S)


def nbgrader_meta(cell):
    return cell.get("metadata", {}).get("nbgrader", {})


def strip_cell(cell):
    """The learner's version of one cell: solutions replaced by a prompt, outputs cleared."""
    meta = nbgrader_meta(cell)
    if meta.get("solution"):
        if cell.cell_type == "code":
            if _REGION.search(cell.source):
                cell.source = _REGION.sub(
                    lambda m: "\n".join(m.group(1) + line for line in CODE_PROMPT.splitlines()),
                    cell.source)
            elif not _released(cell.source):
                cell.source = CODE_PROMPT
            # else: already the learner's version (its prompts stand where the regions were), so a
            # released notebook released again (the workshop image's labs) keeps its scaffolding.
        else:
            cell.source = TEXT_PROMPT
    if cell.cell_type == "code":
        cell.source = _HIDDEN_TESTS.sub("", cell.source)
        cell.outputs = []
        cell.execution_count = None
    cell.get("metadata", {}).pop("collapsed", None)
    return cell


def _released(source):
    """A solution cell already stripped: every solution region replaced by the prompt."""
    lines = [line.strip() for line in source.splitlines()]
    first, second = CODE_PROMPT.splitlines()
    return any(a == first and b == second for a, b in zip(lines, lines[1:]))


def learner_version(nb):
    """A learner's copy of a notebook: every solution stripped, no outputs, no trace of answers."""
    nb = nbformat.from_dict(nb)
    for cell in nb.cells:
        strip_cell(cell)
        cell.get("metadata", {}).pop("execution", None)
    nb.metadata.pop("widgets", None)
    return nb


def solution_left(nb):
    """Solution markers still in a notebook (a release must have none)."""
    return [i for i, cell in enumerate(nb.cells)
            if "### BEGIN SOLUTION" in cell.source or "### BEGIN HIDDEN TESTS" in cell.source]


def locked_cells(nb):
    """{grade_id: source} of the cells learners must not change."""
    return {nbgrader_meta(c)["grade_id"]: c.source for c in nb.cells
            if nbgrader_meta(c).get("locked") or nbgrader_meta(c).get("grade")}


def changed_locked_cells(released, submitted):
    """(deleted ids, edited ids) of locked cells: the submission against the release."""
    want, got = locked_cells(released), locked_cells(submitted)
    # A learner may drop the metadata along with editing: find such cells by their old source too.
    sources = {c.source for c in submitted.cells}
    deleted = [i for i in want if i not in got and want[i] not in sources]
    edited = [i for i in want if i in got and got[i] != want[i]]
    return deleted, edited
