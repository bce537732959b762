"""PRODUCT.md §4: once a conversation is closed its tags are locked, whatever the
path: services, the m2m managers in both directions, the link model, bulk
operations and raw SQL (refused by the database)."""

import pytest
from django.db import IntegrityError, connection, transaction

from conversations import services
from conversations.exceptions import InvalidInput, TagsLocked
from conversations.models import ConversationTag, Tag
from tests.factories import TagFactory, conversation_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def billing():
    return TagFactory(name="billing")


@pytest.fixture
def closed(billing):
    return conversation_in("closed", tags=[billing])


def _tag_ids(conversation):
    return set(
        ConversationTag.objects.filter(conversation=conversation).values_list("tag_id", flat=True)
    )


def test_open_conversation_tags_can_change(billing):
    conversation = conversation_in("in_progress")
    services.conversation_tag_add(conversation=conversation, tag=billing)
    services.conversation_tag_add(conversation=conversation, tag="Urgent")  # created on use
    assert {t.name for t in conversation.tags.all()} == {"billing", "Urgent"}
    assert services.conversation_tag_remove(conversation=conversation, tag="billing") is True
    assert services.conversation_tag_remove(conversation=conversation, tag="billing") is False
    assert {t.name for t in conversation.tags.all()} == {"Urgent"}


def test_tag_names_are_case_insensitive(billing):
    conversation = conversation_in("new")
    tag = services.conversation_tag_add(conversation=conversation, tag="BILLING")
    assert tag.pk == billing.pk
    assert Tag.objects.count() == 1


def test_services_refuse_on_closed(closed, billing):
    with pytest.raises(TagsLocked) as refusal:
        services.conversation_tag_add(conversation=closed, tag="new-one")
    assert refusal.value.code == "tags_locked"
    with pytest.raises(TagsLocked):
        services.conversation_tag_remove(conversation=closed, tag=billing)
    assert _tag_ids(closed) == {billing.pk}
    assert not Tag.objects.filter(name="new-one").exists()


def test_services_refuse_on_archived(billing):
    archived = conversation_in("closed", archived=True, tags=[billing])
    with pytest.raises(TagsLocked):
        services.conversation_tag_remove(conversation=archived, tag=billing)
    assert _tag_ids(archived) == {billing.pk}


@pytest.mark.parametrize("operation", ["add", "remove", "clear", "set"])
def test_forward_manager_refused(closed, billing, operation):
    other = TagFactory(name="other")
    # Django's m2m managers run in atomic(savepoint=False): a refusal inside a
    # caller's transaction spoils it, so callers (and this test) use a savepoint.
    with pytest.raises(TagsLocked), transaction.atomic():
        if operation == "add":
            closed.tags.add(other)
        elif operation == "remove":
            closed.tags.remove(billing)
        elif operation == "clear":
            closed.tags.clear()
        else:
            closed.tags.set([other])
    assert _tag_ids(closed) == {billing.pk}


@pytest.mark.parametrize("operation", ["add", "remove", "clear"])
def test_reverse_manager_refused(closed, billing, operation):
    other = TagFactory(name="other")
    with pytest.raises(TagsLocked), transaction.atomic():
        if operation == "add":
            other.conversations.add(closed)
        elif operation == "remove":
            billing.conversations.remove(closed)
        else:
            billing.conversations.clear()
    assert _tag_ids(closed) == {billing.pk}


def test_reverse_manager_still_works_for_open_conversations(closed, billing):
    open_one = conversation_in("new")
    billing.conversations.add(open_one)
    billing.conversations.remove(open_one)
    assert _tag_ids(open_one) == set()
    assert _tag_ids(closed) == {billing.pk}


def test_link_model_save_and_delete_refused(closed, billing):
    other = TagFactory(name="x")
    with pytest.raises(TagsLocked), transaction.atomic():
        ConversationTag.objects.create(conversation=closed, tag=other)
    with pytest.raises(TagsLocked), transaction.atomic():
        ConversationTag.objects.get(conversation=closed).delete()
    with pytest.raises(TagsLocked), transaction.atomic():
        ConversationTag.objects.filter(conversation=closed).delete()
    assert _tag_ids(closed) == {billing.pk}


def test_bulk_create_refused_by_the_database(closed):
    other = TagFactory(name="other")
    with pytest.raises(IntegrityError, match="tags_locked"), transaction.atomic():
        ConversationTag.objects.bulk_create([ConversationTag(conversation=closed, tag=other)])
    assert _tag_ids(closed) == {closed.tags.get().pk}


def test_raw_delete_refused_by_the_database(closed, billing):
    # _raw_delete skips signals entirely: only the trigger stands in the way.
    with pytest.raises(IntegrityError, match="tags_locked"), transaction.atomic():
        ConversationTag.objects.filter(conversation=closed)._raw_delete(connection.alias)
    assert _tag_ids(closed) == {billing.pk}


def test_raw_sql_refused_by_the_database(closed, billing):
    other = TagFactory(name="other")
    statements = [
        (
            "INSERT INTO conversations_conversationtag (conversation_id, tag_id, added_at) "
            "VALUES (%s, %s, now())",
            [closed.pk, other.pk],
        ),
        ("DELETE FROM conversations_conversationtag WHERE conversation_id = %s", [closed.pk]),
        (
            "UPDATE conversations_conversationtag SET tag_id = %s WHERE conversation_id = %s",
            [other.pk, closed.pk],
        ),
    ]
    for sql, params in statements:
        with (
            pytest.raises(IntegrityError, match="tags_locked"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, params)
    assert _tag_ids(closed) == {billing.pk}


def test_moving_a_link_onto_a_closed_conversation_refused(closed):
    open_one = conversation_in("new", tags=[TagFactory(name="moving")])
    with pytest.raises(IntegrityError, match="tags_locked"), transaction.atomic():
        ConversationTag.objects.filter(conversation=open_one).update(conversation=closed)


def test_tag_on_a_closed_conversation_cannot_be_deleted(closed, billing):
    with pytest.raises(TagsLocked) as refusal, transaction.atomic():
        billing.delete()
    assert "closed" in refusal.value.detail
    # Deleting the row behind the model's back is refused by the database (Django's
    # foreign keys are deferred to commit; make them immediate to see it here).
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        with pytest.raises(IntegrityError), transaction.atomic():
            Tag.objects.filter(pk=billing.pk)._raw_delete(connection.alias)
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
    assert Tag.objects.filter(pk=billing.pk).exists()
    assert _tag_ids(closed) == {billing.pk}


def test_tag_only_on_open_conversations_can_be_deleted():
    tag = TagFactory(name="temporary")
    open_one = conversation_in("in_progress", tags=[tag])
    tag.delete()
    assert _tag_ids(open_one) == set()


def test_tags_stay_after_contact_writes_again(closed, billing):
    result = services.message_receive(
        channel=closed.contact.channel, external_id=closed.contact.external_id, text="Me again"
    )
    assert result.conversation.pk != closed.pk
    assert _tag_ids(closed) == {billing.pk}
    assert _tag_ids(result.conversation) == set()


# --- one identity for tag names ---------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("iade", "İADE"),
        ("straße", "STRAẞE"),
        ("straße", "STRASSE"),
        ("k", "\u212a"),  # the Kelvin sign
        ("foo", "ｆｏｏ"),  # fullwidth
        ("Billing", "billing"),
        ("two words", "Two   Words"),
    ],
)
def test_names_that_look_the_same_are_one_tag(first, second):
    conversation = conversation_in("new")
    services.conversation_tag_add(conversation=conversation, tag=first)
    services.conversation_tag_add(conversation=conversation, tag=second)
    assert Tag.objects.count() == 1
    assert conversation.tags.count() == 1
    assert services.tag_get_or_create(name=second) == Tag.objects.get()
    assert services.conversation_tag_remove(conversation=conversation, tag=second) is True


@pytest.mark.parametrize(
    "name",
    ["foo\u200b", "\u202efoo", "fo\u200do", "foo\u2066", "\u00adfoo", "foo\x07"],
    ids=["zero-width-space", "rtl-override", "zwj", "isolate", "soft-hyphen", "bell"],
)
def test_invisible_and_bidi_characters_are_refused(name):
    conversation = conversation_in("new")
    with pytest.raises(InvalidInput, match="invisible or text-direction"):
        services.conversation_tag_add(conversation=conversation, tag=name)
    assert not Tag.objects.exists()


def test_the_database_refuses_a_second_row_with_the_same_identity():
    Tag.objects.create(name="straße")
    with pytest.raises(IntegrityError), transaction.atomic():
        Tag.objects.create(name="STRASSE")
    assert Tag.objects.get().key == "strasse"


def test_the_admin_form_reports_a_look_alike_name(staff_client):
    Tag.objects.create(name="refund")
    response = staff_client.post(
        "/admin/conversations/tag/add/", {"name": "ＲＥＦＵＮＤ", "colour": "#2563eb"}
    )
    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert Tag.objects.count() == 1
