from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from config.api import api

admin.site.site_header = "Parley back office"
admin.site.site_title = "Parley admin"
admin.site.index_title = "Back office"

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
    path("flows/", include("flows.urls")),
    path("reports/", include("reports.urls")),
    path("chat/", include("connectors.urls")),
    path("", include("inbox.urls")),
]
