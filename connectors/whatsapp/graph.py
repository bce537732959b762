"""The WhatsApp Cloud API (Meta's Graph API) over plain HTTP: JSON calls with the
channel's access token, and media downloads."""

import json
import urllib.error
import urllib.request

from ..models import Channel

TIMEOUT_SECONDS = 10


class GraphError(Exception):
    """A failed call; ``retryable`` for 429, 5xx and network errors."""

    def __init__(self, detail: str, *, status: int | None = None):
        super().__init__(detail)
        self.status = status
        self.retryable = status is None or status == 429 or status >= 500


def _request(channel: Channel, url: str, body: dict | None = None) -> tuple[bytes, str]:
    if not url.startswith(("http://", "https://")):
        raise GraphError("The Graph API URL must be http or https.", status=400)
    headers = {"Authorization": f"Bearer {channel.secret('access_token')}"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            return response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        raise GraphError(_error_detail(exc), status=exc.code) from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise GraphError(f"{type(exc).__name__}: {exc}") from None


def _error_detail(exc: urllib.error.HTTPError) -> str:
    """Meta's ``{"error": {"message", "code"}}`` as a sentence, else the HTTP status."""
    try:
        error = json.loads(exc.read())["error"]
        return f"HTTP {exc.code}: {error.get('message', '')} (code {error.get('code')})"
    except (ValueError, KeyError, TypeError, AttributeError):
        return f"HTTP {exc.code}: {exc.reason}"


def call(channel: Channel, path: str, body: dict | None = None) -> dict:
    """GET (no body) or POST ``{base}/{path}``; the JSON answer."""
    content, _ = _request(channel, f"{channel.graph_base_url}/{path.lstrip('/')}", body)
    return json.loads(content or b"{}")


def send(channel: Channel, payload: dict) -> str:
    """POST /{phone_number_id}/messages; the new message's id (wamid)."""
    answer = call(channel, f"{channel.phone_number_id}/messages", payload)
    try:
        return answer["messages"][0]["id"]
    except (KeyError, IndexError, TypeError):
        raise GraphError(f"Unexpected answer from the Graph API: {answer!r:.200}") from None


def download_media(channel: Channel, media_id: str) -> tuple[bytes, str]:
    """A media object's bytes and MIME type: its URL from /{media_id}, then the URL
    itself (also with the token)."""
    info = call(channel, media_id)
    content, content_type = _request(channel, info["url"])
    return content, info.get("mime_type") or content_type
