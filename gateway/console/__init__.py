"""The privacy console: `/console` (login, the page) and its JSON API under `/admin/api/...`.

Wire it with `app.include_router(console_router)` before the app's catch-all route.
"""

from fastapi import APIRouter

from gateway.console import api, pages

router = APIRouter()
router.include_router(pages.router)
router.include_router(api.router)

__all__ = ["router"]
