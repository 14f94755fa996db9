"""Helper for the other-solutions modules: derive a wrong answer from a correct one."""


def edit(source: str, old: str, new: str) -> str:
    """``source`` with ``old`` replaced by ``new``; fails loudly if ``old`` is not there."""
    assert old in source, old
    return source.replace(old, new)
