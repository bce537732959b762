from django.urls import path

from . import saved_replies, stream, views

app_name = "inbox"
urlpatterns = [
    path("", views.home, name="home"),
    path("inbox/", views.inbox, name="list"),
    path("inbox/poll/", views.poll, name="poll"),
    path("inbox/stream/", stream.stream, name="stream"),
    path("inbox/bulk/", views.bulk, name="bulk"),
    path("inbox/availability/", views.availability_view, name="availability"),
    path("inbox/c/<int:pk>/", views.pane, name="pane"),
    path("inbox/c/<int:pk>/reply/", views.reply, name="reply"),
    path("inbox/c/<int:pk>/note/", views.note, name="note"),
    path("inbox/c/<int:pk>/mentions/read/", views.mentions_read, name="mentions_read"),
    path("inbox/mentions/", views.mentions, name="mentions"),
    path("inbox/replies/", saved_replies.index, name="saved_replies"),
    path("inbox/replies/new/", saved_replies.edit, name="saved_reply_new"),
    path("inbox/replies/<int:reply_id>/", saved_replies.edit, name="saved_reply_edit"),
    path("inbox/replies/<int:reply_id>/delete/", saved_replies.delete, name="saved_reply_delete"),
    path("inbox/replies/search/", saved_replies.search, name="saved_reply_search"),
    path("inbox/c/<int:pk>/replies/<int:reply_id>/", saved_replies.fill, name="saved_reply_fill"),
    path("inbox/c/<int:pk>/close/", views.close, name="close"),
    path("inbox/c/<int:pk>/archive/", views.archive, name="archive"),
    path("inbox/c/<int:pk>/unarchive/", views.unarchive, name="unarchive"),
    path("inbox/c/<int:pk>/assign/", views.assign, name="assign"),
    path("inbox/c/<int:pk>/tags/add/", views.tag_add, name="tag_add"),
    path("inbox/c/<int:pk>/tags/remove/", views.tag_remove, name="tag_remove"),
    path("inbox/c/<int:pk>/presence/", stream.presence, name="presence"),
    path("inbox/c/<int:pk>/read/", views.read, name="read"),
    path("inbox/c/<int:pk>/snooze/", views.snooze_view, name="snooze"),
    path("inbox/c/<int:pk>/unsnooze/", views.unsnooze_view, name="unsnooze"),
    path("inbox/c/<int:pk>/contact/", views.contact_edit, name="contact_edit"),
    path("contacts/", views.contacts, name="contacts"),
    path("contacts/<int:pk>/", views.contact, name="contact"),
]
