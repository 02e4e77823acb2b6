"""Small helpers shared by the system-level RTL modules (router, mesh, CSR, top)."""

from __future__ import annotations


def reject(component: object, exc: Exception) -> Exception:
    """Return ``exc`` after silencing the "created but never used" warning.

    Amaranth warns about any elaboratable that is never elaborated; a component
    whose constructor raises on a bad parameter is never meant to be. Use as
    ``raise reject(self, ValueError(...))``.
    """
    component._MustUse__silence = True  # amaranth._unused.MustUse's opt-out flag
    return exc
