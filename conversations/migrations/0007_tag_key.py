"""One identity for tag names (``models.tag_key``): the lookup and the unique
constraint use the same key, computed in Python (Unicode case folding is not what
PostgreSQL's ``lower()`` does). Existing tags get their key; a later tag whose key an
earlier one already has keeps its row, with its id appended to the key, so nothing is
lost (such pairs could exist only through the old, looser rule)."""

from django.db import migrations, models
from django.db.models import Q

import conversations.models


def fill_keys(apps, schema_editor):
    from conversations.models import clean_tag_name, tag_key

    Tag = apps.get_model("conversations", "Tag")
    seen = set()
    for tag in Tag.objects.order_by("id"):
        try:
            key = tag_key(clean_tag_name(tag.name))
        except Exception:  # noqa: BLE001 (a name the new rule refuses keeps a unique key)
            key = ""
        if not key or key in seen:
            key = f"{key or 'tag'}#{tag.pk}"
        seen.add(key)
        Tag.objects.filter(pk=tag.pk).update(key=key)


class Migration(migrations.Migration):
    dependencies = [("conversations", "0006_declared_guards")]

    operations = [
        migrations.AddField(
            model_name="tag",
            name="key",
            field=models.CharField(default="", editable=False, max_length=200),
            preserve_default=False,
        ),
        migrations.AlterField(
            model_name="tag",
            name="name",
            field=models.CharField(max_length=50, validators=[conversations.models.clean_tag_name]),
        ),
        migrations.RunPython(fill_keys, migrations.RunPython.noop),
        migrations.RemoveConstraint(model_name="tag", name="tag_unique_name_ci"),
        migrations.AddConstraint(
            model_name="tag",
            constraint=models.UniqueConstraint(
                fields=("key",),
                name="tag_unique_key",
                violation_error_message="A tag with this name already exists.",
            ),
        ),
        migrations.AddConstraint(
            model_name="tag",
            constraint=models.CheckConstraint(condition=~Q(key=""), name="tag_key_not_empty"),
        ),
    ]
