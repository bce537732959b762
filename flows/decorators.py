"""The login check of the agents' pages (the inbox and the flows pages), aware of htmx.

It lives here, the lowest app with pages (imports point inbox -> flows ->
conversations), so both apps use the one decorator.
"""

from functools import wraps
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponse
from django.shortcuts import resolve_url
from django.utils.http import url_has_allowed_host_and_scheme, urlencode


def agent_required(view):
    """Only for a logged-in, active user (an agent); others go to the login page.

    An ordinary request is redirected there (302), ``next`` being the page asked
    for; a POST's ``next`` is the page its form was on (its same-site Referer),
    since coming back to an action's URL after login would be a GET it refuses.

    An htmx request is answered ``401`` with ``HX-Redirect``: htmx then loads the
    login page as a whole page, instead of following a 302 and swapping the login
    form into the fragment it asked for (the list, the pane); ``next`` is the page
    the browser shows (``HX-Current-URL``), not the fragment's URL. Anything else
    reading that response sees a failure, not a 200.
    """

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        user = request.user
        if user.is_authenticated and user.is_active:
            return view(request, *args, **kwargs)
        next_url = _next_url(request)
        htmx = getattr(request, "htmx", None)
        if htmx and not htmx.history_restore_request:
            login = resolve_url(settings.LOGIN_URL)
            response = HttpResponse("Log in to go on.", status=401, content_type="text/plain")
            response["HX-Redirect"] = f"{login}?{urlencode({'next': next_url})}"
            return response
        return redirect_to_login(next_url)

    return wrapper


def _next_url(request) -> str:
    htmx = getattr(request, "htmx", None)
    if htmx and htmx.current_url_abs_path:
        return htmx.current_url_abs_path
    if request.method in ("GET", "HEAD"):
        return request.get_full_path()
    referer = request.headers.get("Referer", "")
    if referer and url_has_allowed_host_and_scheme(
        referer, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        parts = urlsplit(referer)
        return parts.path + (f"?{parts.query}" if parts.query else "")
    return resolve_url(settings.LOGIN_REDIRECT_URL)
