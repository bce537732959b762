from django.urls import path

from . import views

app_name = "whatsapp"
urlpatterns = [
    path("webhooks/whatsapp/<slug:channel>/", views.webhook, name="webhook"),
    path("media/whatsapp/<int:pk>/", views.media, name="media"),
]
