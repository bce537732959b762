"""The top bar's available/away switch: read only when a whole page draws it."""

from django.utils.functional import SimpleLazyObject

from conversations.availability import is_away


def availability(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"agent_away": SimpleLazyObject(lambda: is_away(user))}
