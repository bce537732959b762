import django.utils.timezone


def business_timezone():
    return django.utils.timezone.get_default_timezone()
