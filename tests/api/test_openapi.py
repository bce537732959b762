import pytest

pytestmark = pytest.mark.django_db

ENDPOINTS = {
    ("post", "/api/v1/contacts"): {"201", "401", "409", "422"},
    ("post", "/api/v1/messages/inbound"): {"201", "401", "422"},
    ("get", "/api/v1/conversations"): {"200", "401", "422"},
    ("get", "/api/v1/conversations/{conversation_id}"): {"200", "401", "404"},
    ("post", "/api/v1/conversations/{conversation_id}/reply"): {"201", "401", "404", "409"},
    ("post", "/api/v1/conversations/{conversation_id}/close"): {"200", "404", "409"},
    ("post", "/api/v1/conversations/{conversation_id}/archive"): {"200", "404", "409"},
    ("post", "/api/v1/conversations/{conversation_id}/unarchive"): {"200", "404", "409"},
    ("post", "/api/v1/conversations/{conversation_id}/snooze"): {"200", "404", "409", "422"},
    ("post", "/api/v1/conversations/{conversation_id}/unsnooze"): {"200", "404", "409"},
    ("post", "/api/v1/conversations/{conversation_id}/tags"): {"201", "404", "409", "422"},
    ("delete", "/api/v1/conversations/{conversation_id}/tags/{name}"): {"200", "404", "409"},
    ("post", "/api/v1/flows/{flow_id}/start"): {"201", "401", "404", "409", "422"},
    ("post", "/api/v1/broadcasts"): {"201", "401", "404", "409", "422"},
    ("get", "/api/v1/broadcasts/{broadcast_id}"): {"200", "401", "404"},
    ("get", "/api/v1/messages/{message_id}/delivery"): {"200", "401", "404"},
}


def test_the_openapi_schema_describes_every_endpoint_and_its_errors(agent_client):
    # The docs and schema are for logged-in users; the endpoints take bearer tokens.
    response = agent_client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["components"]["securitySchemes"]["BearerToken"]["scheme"] == "bearer"
    error_ref = "#/components/schemas/ErrorOut"
    for (method, path), statuses in ENDPOINTS.items():
        operation = schema["paths"][path][method]
        assert statuses <= set(operation["responses"]), (method, path)
        assert operation["security"] == [{"BearerToken": []}]
        for status in statuses - {"200", "201"}:
            content = operation["responses"][status]["content"]["application/json"]
            assert content["schema"]["$ref"] == error_ref, (method, path, status)
    assert set(schema["components"]["schemas"]["ErrorOut"]["required"]) == {"error", "detail"}


def test_the_docs_page_is_served_to_logged_in_users(client, agent_client):
    anonymous = client.__class__().get("/api/v1/docs")
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/login/")
    response = agent_client.get("/api/v1/docs")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui-bundle.js" in html and "/static/ninja/" in html  # no CDN


def _schema(agent_client) -> dict:
    return agent_client.get("/api/v1/openapi.json").json()


def _body(schema: dict, path: str) -> dict:
    ref = schema["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    return schema["components"]["schemas"][ref["$ref"].rsplit("/", 1)[1]]["properties"]


def test_the_schema_documents_the_limits_of_the_models_and_services(agent_client):
    from conversations.models import MESSAGE_MAX_LENGTH
    from conversations.text import CHANNEL_RE

    schema = _schema(agent_client)
    inbound = _body(schema, "/api/v1/messages/inbound")
    assert inbound["text"]["minLength"] == 1
    assert inbound["text"]["maxLength"] == MESSAGE_MAX_LENGTH
    assert inbound["external_id"]["maxLength"] == 255
    assert inbound["channel"]["maxLength"] == 32
    assert inbound["channel"]["pattern"] == CHANNEL_RE.pattern.replace("a-z", "A-Za-z")
    contact = _body(schema, "/api/v1/contacts")
    assert contact["name"]["maxLength"] == 200
    assert _body(schema, "/api/v1/conversations/{conversation_id}/tags")["name"]["maxLength"] == 50
    reply = _body(schema, "/api/v1/conversations/{conversation_id}/reply")
    assert reply["text"]["maxLength"] == MESSAGE_MAX_LENGTH
    broadcast = _body(schema, "/api/v1/broadcasts")
    segment = broadcast["segment"]
    if "$ref" in segment:
        segment = schema["components"]["schemas"][segment["$ref"].rsplit("/", 1)[1]]
    assert set(segment["enum"]) == {"all", "tag", "channel", "status"}
    listing = {p["name"]: p for p in schema["paths"]["/api/v1/conversations"]["get"]["parameters"]}
    assert listing["limit"]["schema"]["maximum"] == 200
    assert listing["q"]["schema"]["anyOf"][0]["maxLength"] == 200
    assert listing["archived"]["schema"]["enum"] == ["no", "yes", "any"]
    detail = schema["paths"]["/api/v1/conversations/{conversation_id}"]["get"]["parameters"][0]
    assert (detail["schema"]["minimum"], detail["schema"]["maximum"]) == (1, 2**63 - 1)


@pytest.mark.parametrize(
    ("field", "at_limit", "over"),
    [
        ("text", "x" * 10_000, "x" * 10_001),
        ("external_id", "e" * 255, "e" * 256),
        ("name", "n" * 200, "n" * 201),
        ("channel", "c" * 32, "c" * 33),
    ],
)
def test_the_api_enforces_exactly_the_documented_limits(client, token, field, at_limit, over):
    headers = {"Authorization": f"Bearer {token}"}
    base = {"channel": "web", "external_id": "limits", "text": "hello"}

    def post(value):
        return client.post(
            "/api/v1/messages/inbound",
            {**base, field: value},
            content_type="application/json",
            headers=headers,
        )

    refused = post(over)
    assert refused.status_code == 422
    assert refused.json()["error"] == "invalid_request"
    assert field in refused.json()["detail"]
    assert post(at_limit).status_code == 201
