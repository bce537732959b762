"""Stand-in until issue 14 part A's InboxSettings lands: the business's time zone."""

import django.utils.timezone


def business_timezone():
    return django.utils.timezone.get_default_timezone()
