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
