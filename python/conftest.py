"""Doctests of linpert's modules run with the tests (pyproject: --doctest-modules).

An example that needs what a test machine cannot have (a downloaded dataset, a finished run folder) is marked
``+SKIP`` in its docstring; a docstring whose every example is such is documentation, not a test, and is deselected
rather than reported as a skipped test.
"""

from __future__ import annotations

import doctest


def pytest_collection_modifyitems(config, items):
    from _pytest.doctest import DoctestItem

    def documentation_only(item) -> bool:
        examples = item.dtest.examples if isinstance(item, DoctestItem) else []
        return bool(examples) and all(example.options.get(doctest.SKIP) for example in examples)

    dropped = [item for item in items if documentation_only(item)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if not documentation_only(item)]
