"""Real HTTP against ``live_server``: a tiny JSON client on urllib."""

import json
import urllib.error
import urllib.request
from dataclasses import dataclass

import pytest

from connectors.tokens import token_create


@dataclass
class Response:
    status: int
    body: object
    headers: dict

    @property
    def error(self) -> str | None:
        return self.body.get("error") if isinstance(self.body, dict) else None


class ApiClient:
    def __init__(self, base_url: str, token: str | None):
        self.base_url = base_url.rstrip("/") + "/api/v1"
        self.token = token

    def request(
        self,
        method: str,
        path: str,
        body=None,
        *,
        raw: bytes | None = None,
        token: str | None = ...,
        headers: dict | None = None,
    ) -> Response:
        token = self.token if token is ... else token
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        all_headers = {"Accept": "application/json", **(headers or {})}
        if data is not None:
            all_headers.setdefault("Content-Type", "application/json")
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(  # noqa: S310 (the live server's http URL)
            self.base_url + path, data=data, method=method, headers=all_headers
        )
        try:
            with urllib.request.urlopen(request, timeout=20) as response:  # noqa: S310
                status, payload, got = response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as exc:
            status, payload, got = exc.code, exc.read(), dict(exc.headers)
        try:
            parsed = json.loads(payload) if payload else None
        except ValueError:
            parsed = payload.decode("utf-8", "replace")  # not JSON: the test shows it
        return Response(status, parsed, got)

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path, body=None, **kwargs):
        return self.request("POST", path, body, **kwargs)

    def delete(self, path, **kwargs):
        return self.request("DELETE", path, **kwargs)


@pytest.fixture
def token(agent) -> str:
    return token_create(user=agent, name="tests")[1]


@pytest.fixture
def api(live_server, token) -> ApiClient:
    return ApiClient(live_server.url, token)


@pytest.fixture(autouse=True)
def _fresh_token_cache():
    """Each test's tokens and users roll back with it; so must the per-process cache."""
    from connectors import tokens

    tokens.forget_tokens()
    yield
    tokens.forget_tokens()
