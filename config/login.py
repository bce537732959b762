"""What a locked-out login answers (django-axes' ``AXES_LOCKOUT_CALLABLE``): the same
login page, the inbox's or the admin's, with a sentence saying why and for how long,
and HTTP 429. The sentence does not say whether the username exists."""

from django.conf import settings
from django.contrib import admin
from django.contrib.auth.forms import AuthenticationForm
from django.forms.utils import ErrorDict, ErrorList
from django.shortcuts import render

LOCKOUT_STATUS = 429


def lockout_message() -> str:
    minutes = settings.LOGIN_LOCKOUT_MINUTES
    period = "1 minute" if minutes == 1 else f"{minutes} minutes"
    return (
        f"Too many failed log-ins for this username or from this network: logging in is "
        f"blocked for {period}, even with the right password. Try again later, or ask an "
        f"administrator."
    )


def lockout_response(request, original_response=None, credentials=None):
    username = (credentials or {}).get("username") or request.POST.get("username", "")
    form = AuthenticationForm(request, data={"username": username})
    form._errors = ErrorDict({"__all__": ErrorList([lockout_message()])})
    if request.path.startswith("/admin/"):
        context = {
            **admin.site.each_context(request),
            "form": form,
            "title": "Log in",
            "app_path": request.get_full_path(),
            "username": username,
            "next": request.POST.get("next", ""),
        }
        response = render(request, "admin/login.html", context, status=LOCKOUT_STATUS)
    else:
        context = {"form": form, "next": request.POST.get("next", "")}
        response = render(request, "registration/login.html", context, status=LOCKOUT_STATUS)
    response["Retry-After"] = str(settings.LOGIN_LOCKOUT_MINUTES * 60)
    return response
