"""Fixtures shared by this folder's tests: a real OpenBao per module (openbao.py)."""

from openbao import bao

__all__ = ["bao"]
