from django.urls import path

from . import stream, views

app_name = "inbox"
urlpatterns = [
    path("", views.home, name="home"),
    path("inbox/", views.inbox, name="list"),
    path("inbox/poll/", views.poll, name="poll"),
    path("inbox/stream/", stream.stream, name="stream"),
    path("inbox/bulk/", views.bulk, name="bulk"),
    path("inbox/c/<int:pk>/", views.pane, name="pane"),
    path("inbox/c/<int:pk>/reply/", views.reply, name="reply"),
    path("inbox/c/<int:pk>/close/", views.close, name="close"),
    path("inbox/c/<int:pk>/archive/", views.archive, name="archive"),
    path("inbox/c/<int:pk>/unarchive/", views.unarchive, name="unarchive"),
    path("inbox/c/<int:pk>/assign/", views.assign, name="assign"),
    path("inbox/c/<int:pk>/tags/add/", views.tag_add, name="tag_add"),
    path("inbox/c/<int:pk>/tags/remove/", views.tag_remove, name="tag_remove"),
    path("inbox/c/<int:pk>/presence/", stream.presence, name="presence"),
    path("inbox/c/<int:pk>/read/", views.read, name="read"),
    path("inbox/c/<int:pk>/contact/", views.contact_edit, name="contact_edit"),
    path("contacts/", views.contacts, name="contacts"),
    path("contacts/<int:pk>/", views.contact, name="contact"),
]
