from django.urls import path

from . import stream, views

app_name = "connectors"
urlpatterns = [
    path("<slug:channel>/", views.chat, name="chat"),
    path("<slug:channel>/thread/", views.chat_thread, name="chat-thread"),
    path("<slug:channel>/send/", views.chat_send, name="chat-send"),
    path("<slug:channel>/stream/", stream.chat_stream, name="chat-stream"),
]
