"""Ready-made ``access`` rules for route declarations, for projects without DRF permissions::

    routes = [{"route": "secret", "access": is_authenticated}]

A rule is called as ``rule(user, headers, payload)``; when it returns False, the request is
answered 401 ``not_authenticated`` for an anonymous user and 403 ``permission_denied`` for anyone else.
"""

from __future__ import annotations

from typing import Any

__all__ = ["is_authenticated", "is_staff"]


def is_authenticated(user: Any, headers: dict[str, Any], payload: Any) -> bool:
    """Let in any logged-in user; anonymous users get 401."""
    return bool(getattr(user, "is_authenticated", False))


def is_staff(user: Any, headers: dict[str, Any], payload: Any) -> bool:
    """Let in staff users; others get 403 (401 when anonymous)."""
    return bool(getattr(user, "is_authenticated", False) and getattr(user, "is_staff", False))
