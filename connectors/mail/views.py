from django.contrib.auth.decorators import login_required
from django.http import FileResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET

from .models import MailAttachment


@require_GET
@login_required
def attachment(request, pk: int):
    """An email's attachment, always as a download (never shown inline: its type is
    whatever the sender said)."""
    found = get_object_or_404(MailAttachment, pk=pk)
    response = FileResponse(found.file.open("rb"), as_attachment=True, filename=found.filename)
    response["Content-Type"] = "application/octet-stream"
    response["X-Content-Type-Options"] = "nosniff"
    return response
