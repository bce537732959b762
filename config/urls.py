from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path
from django.views.generic import RedirectView

admin.site.site_header = "Parley back office"
admin.site.site_title = "Parley admin"
admin.site.index_title = "Back office"

urlpatterns = [
    path("", RedirectView.as_view(url="/inbox/", permanent=False)),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]
