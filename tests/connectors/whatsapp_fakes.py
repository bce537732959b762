"""Meta's documented webhook payloads and a local HTTP server standing in for the
Graph API (a real http.server in a thread, on a free port)."""

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

APP_SECRET = "meta-app-secret"
ACCESS_TOKEN = "EAAG-test-token"
VERIFY_TOKEN = "parley-verify"
PHONE_NUMBER_ID = "106540352242922"
WABA_ID = "102290129340398"
CONTACT_WA_ID = "16505551234"


def envelope(value: dict) -> dict:
    """The webhook's outer shape: object, entry[].changes[] of field "messages"."""
    metadata = {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID}
    value = {"messaging_product": "whatsapp", "metadata": metadata, **value}
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": WABA_ID, "changes": [{"value": value, "field": "messages"}]}],
    }


def inbound(message: dict, *, name: str = "Sheena Nelson") -> dict:
    return envelope(
        {
            "contacts": [{"profile": {"name": name}, "wa_id": CONTACT_WA_ID}],
            "messages": [{"from": CONTACT_WA_ID, "timestamp": "1749416383", **message}],
        }
    )


def text_message(wamid: str, body: str) -> dict:
    return inbound({"id": wamid, "type": "text", "text": {"body": body}})


def status(wamid: str, state: str, *, errors: list | None = None) -> dict:
    item = {"id": wamid, "status": state, "timestamp": "1750263773", "recipient_id": CONTACT_WA_ID}
    if errors:
        item["errors"] = errors
    return envelope({"statuses": [item]})


def signed(body: bytes, secret: str = APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class FakeGraph:
    """Records every request (method, path, Authorization, JSON body) and answers
    as the Graph API does: message ids, media URLs and bytes, template lists."""

    def __init__(self):
        self.requests: list[dict] = []
        self.fail_next: list[int] = []  # HTTP statuses to answer the next sends with
        self.templates: list[dict] = []
        self.sent = 0
        graph = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, body, content_type="application/json"):
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _record(self, body=None):
                graph.requests.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "authorization": self.headers.get("Authorization"),
                        "json": body,
                    }
                )

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                self._record(body)
                if graph.fail_next:
                    code = graph.fail_next.pop(0)
                    error = {"message": "Too many requests", "code": 130429}
                    return self._answer(code, {"error": error})
                graph.sent += 1
                return self._answer(
                    200,
                    {
                        "messaging_product": "whatsapp",
                        "contacts": [{"input": body.get("to"), "wa_id": body.get("to")}],
                        "messages": [{"id": f"wamid.OUT{graph.sent}"}],
                    },
                )

            def do_GET(self):
                self._record()
                if self.path.startswith("/files/"):
                    return self._answer(200, b"\xff\xd8\xffJPEG", "image/jpeg")
                if "/message_templates" in self.path:
                    return self._answer(200, {"data": graph.templates, "paging": {}})
                media_id = self.path.strip("/").split("?")[0]
                return self._answer(
                    200,
                    {
                        "messaging_product": "whatsapp",
                        "url": f"{graph.url}/files/{media_id}",
                        "mime_type": "image/jpeg",
                        "sha256": "abc",
                        "file_size": 7,
                        "id": media_id,
                    },
                )

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def sends(self) -> list[dict]:
        return [r for r in self.requests if r["method"] == "POST"]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
