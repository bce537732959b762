from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.urls import include, path

from config import health
from config.api import api
from connectors.mail import views as mail_views

admin.site.site_header = "Parley back office"
admin.site.site_title = "Parley admin"
admin.site.index_title = "Back office"

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    # Pages without our <link rel="icon"> (the admin's, a file opened directly): the
    # browser asks for /favicon.ico.
    path("favicon.ico", lambda request: HttpResponsePermanentRedirect(static("img/favicon.svg"))),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
    path("flows/", include("flows.urls")),
    path("reports/", include("reports.urls")),
    path("chat/", include("connectors.urls")),
    path("", include("connectors.whatsapp.urls")),
    path("mail/attachments/<int:pk>/", mail_views.attachment, name="mail-attachment"),
    path("", include("inbox.urls")),
]
