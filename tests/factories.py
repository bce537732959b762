"""Factories that build only states the app can reach.

Contacts are created through ``contact_create`` (so their first conversation and
its history exist); conversations in other statuses are reached by calling the
real services, never by writing a status directly.
"""

import factory
from django.contrib.auth import get_user_model

from conversations import services
from conversations.models import Contact, Conversation, InboxSettings, Source, Tag
from conversations.transitions import Event, Status

PASSWORD = "correct-horse-battery"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"agent{n}")
    first_name = factory.Faker("first_name")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def save_password(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class StaffFactory(UserFactory):
    username = factory.Sequence(lambda n: f"admin{n}")
    is_staff = True
    is_superuser = True


class TagFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tag
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"tag-{n}")
    colour = "#2563eb"


class ContactFactory(factory.django.DjangoModelFactory):
    """A contact created as the admin or the API would: with its first
    conversation, Not contacted."""

    class Meta:
        model = Contact

    channel = "web"
    external_id = factory.Sequence(lambda n: f"visitor-{n}")
    name = factory.Faker("name")

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        return services.contact_create(**kwargs, source=Source.ADMIN)


def inbox_settings_set(**values) -> InboxSettings:
    """Save the inbox settings as an admin would (e.g. ``csat_enabled=True``)."""
    row = InboxSettings.objects.filter(pk=1).first() or InboxSettings()
    for name, value in values.items():
        setattr(row, name, value)
    row.full_clean()
    row.save()
    return row


def conversation_in(
    status: str,
    *,
    contact: Contact | None = None,
    agent=None,
    archived: bool = False,
    tags=(),
    text: str = "Hello, I need help",
) -> Conversation:
    """A conversation brought to ``status`` through the real services.

    ``tags`` are added while it is still open (so a closed one carries them)."""
    contact = contact or ContactFactory()
    conversation = contact.conversations.open().get()
    for tag in tags:
        services.conversation_tag_add(conversation=conversation, tag=tag)
    if status == Status.NOT_CONTACTED:
        pass
    elif status == Status.NEW:
        services.message_receive(
            channel=contact.channel, external_id=contact.external_id, text=text
        )
    elif status == Status.IN_PROGRESS:
        services.message_receive(
            channel=contact.channel, external_id=contact.external_id, text=text
        )
        services.conversation_reply(
            conversation=conversation, agent=agent or UserFactory(), text="Happy to help!"
        )
    elif status == Status.IN_FLOW:
        services.apply_event(conversation=conversation, event=Event.FLOW_START, source=Source.FLOW)
    elif status == Status.CLOSED:
        services.message_receive(
            channel=contact.channel, external_id=contact.external_id, text=text
        )
        services.conversation_close(conversation=conversation, actor=agent)
    elif status == Status.RESOLVED:
        # An agent replied, then closed it with the survey on (as it was, after).
        conversation = conversation_in(Status.IN_PROGRESS, contact=contact, agent=agent, text=text)
        before = InboxSettings.objects.filter(pk=1).first()
        inbox_settings_set(csat_enabled=True)
        services.conversation_close(conversation=conversation, actor=agent or UserFactory())
        if before is None:
            InboxSettings.objects.filter(pk=1).delete()
        else:
            before.save()
    else:
        raise ValueError(status)
    if archived:
        services.conversation_archive(conversation=conversation, actor=agent)
    return Conversation.objects.get(pk=conversation.pk)


def grant_broadcast(user) -> None:
    """Give a (non-staff) user the broadcast permission, as an admin does."""
    from django.contrib.auth.models import Permission

    user.user_permissions.add(Permission.objects.get(codename="start_broadcast"))
