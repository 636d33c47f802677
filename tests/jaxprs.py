"""Helpers that read jaxprs, for tests that check what a function compiles to."""

import collections


def loop_counts(jaxpr) -> dict[str, int]:
    """Number of scan / while primitives anywhere in a jaxpr, nested ones included."""
    counts = collections.Counter()
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in ("scan", "while"):
            counts[eqn.primitive.name] += 1
        for value in eqn.params.values():
            for sub in value if isinstance(value, tuple | list) else (value,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    counts += loop_counts(inner)
    return dict(counts)
