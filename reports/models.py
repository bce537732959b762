"""The reports' rollups: small per-hour and per-day sums of the facts the services
record (StatusChange, Message, the response times on Conversation).

Database triggers (``rollup.py``, installed by migration 0002) append a ±n row to
``Delta`` for every fact as it is written, so concurrent writers never contend on
a row; now and then one transaction folds the deltas into ``Rollup`` (one row per
key). Readers add both. ``manage.py rebuild_reports`` recomputes everything from
the facts.

A key: the business day and hour, the channel (``*`` = all), the agent (``-1`` =
all; facts without an agent exist only there), the tag (``0`` = any; a fact is
also counted under each tag its conversation carries now), and the metric.
"""

from django.db import models

ALL_CHANNELS = "*"
ALL_AGENTS = -1
ANY_TAG = 0


class Key(models.Model):
    day = models.DateField()
    hour = models.SmallIntegerField()
    channel = models.CharField(max_length=32)
    agent_id = models.IntegerField()
    tag_id = models.IntegerField()
    metric = models.CharField(max_length=40)
    n = models.BigIntegerField()

    class Meta:
        abstract = True

    def __str__(self) -> str:
        where = f"{self.channel}/{self.agent_id}/{self.tag_id}"
        return f"{self.day} {self.hour:02d}h {where} {self.metric}: {self.n}"


class Rollup(Key):
    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "tag_id", "agent_id", "day", "metric", "hour"],
                name="reports_rollup_key",
            )
        ]
        indexes = [
            # A range of days for every agent (the per-agent table): contiguous.
            models.Index(
                fields=["channel", "tag_id", "day", "agent_id", "metric"],
                include=["n"],
                name="reports_rollup_days",
            ),
            # The statuses before a range (all history): one range per status.
            models.Index(
                fields=["channel", "tag_id", "agent_id", "metric", "day"],
                include=["n"],
                name="reports_rollup_metric",
            ),
        ]


class Delta(Key):
    pass


class Setting(models.Model):
    """The time zone the rollups' days and hours are in (``rebuild_reports`` sets it)."""

    time_zone = models.CharField(max_length=64)

    def __str__(self) -> str:
        return self.time_zone
