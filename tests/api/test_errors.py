"""Every error the API answers has the one JSON shape, also the ones made outside the
endpoints: a body over the upload limit, a body that is not JSON, an unknown path, a
wrong method, an unexpected exception (issue 12.6). Real HTTP (``live_server``)."""

import pytest

from conversations.models import Contact

pytestmark = pytest.mark.django_db(transaction=True)


def _shaped(response, status: int, code: str) -> None:
    assert response.status == status, response.body
    assert response.headers["Content-Type"].startswith("application/json")
    assert set(response.body) == {"error", "detail"}
    assert response.body["error"] == code
    assert response.body["detail"].endswith(".")


def test_a_body_over_the_upload_limit_is_a_json_413(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    body = {"channel": "web", "external_id": "big", "text": "x" * 9_000, "name": "y" * 2_000}
    response = api.post("/messages/inbound", body)
    _shaped(response, 413, "payload_too_large")
    assert not Contact.objects.exists()


def test_malformed_json_is_a_json_422(api):
    response = api.post("/messages/inbound", raw=b'{"channel": "web",')
    _shaped(response, 422, "invalid_request")


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_a_body_that_is_not_json_is_a_json_415(api, content_type):
    raw = b'{"channel": "web", "external_id": "v1", "text": "hello"}'
    response = api.post("/messages/inbound", raw=raw, headers={"Content-Type": content_type})
    _shaped(response, 415, "unsupported_media_type")
    assert not Contact.objects.exists()


def test_a_json_suffix_media_type_is_accepted(api):
    raw = b'{"channel": "web", "external_id": "v1", "text": "hello"}'
    headers = {"Content-Type": "application/vnd.parley+json; charset=utf-8"}
    assert api.post("/messages/inbound", raw=raw, headers=headers).status == 201


def test_an_unknown_path_is_a_json_404_with_or_without_a_token(api):
    _shaped(api.get("/no-such-thing"), 404, "not_found")
    _shaped(api.post("/conversations/1/explode", {}), 404, "not_found")
    _shaped(api.get("/no-such-thing", token=None), 404, "not_found")


def test_a_wrong_method_is_a_json_405_with_allow(api):
    response = api.delete("/messages/inbound")
    _shaped(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]


def test_an_unexpected_exception_is_a_json_500(api, monkeypatch):
    from conversations import services

    def boom(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(services, "message_receive", boom)
    response = api.post("/messages/inbound", {"channel": "web", "external_id": "v", "text": "t"})
    _shaped(response, 500, "server_error")
    assert "boom" not in response.body["detail"]
