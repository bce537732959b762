from django.urls import path

from . import views

app_name = "flows"
urlpatterns = [
    path("", views.index, name="index"),
    path("start/<int:conversation_id>/", views.start_flow, name="start_flow"),
    path("broadcasts/", views.broadcast_create, name="broadcast_create"),
    path("broadcasts/preview/", views.broadcast_preview, name="broadcast_preview"),
    path("broadcasts/<int:pk>/", views.broadcast_detail, name="broadcast"),
]
