"""Pages: the list of my labs and the editor. Both are shells; the data comes from the REST API."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET

from .permissions import can_edit, visible_labs


@require_GET
@login_required
@ensure_csrf_cookie
def lab_list(request: HttpRequest) -> HttpResponse:
    labs = list(visible_labs(request.user).select_related("owner"))
    for lab in labs:
        lab.editable = can_edit(request.user, lab)  # instructors see their students' labs, read-only
    return render(request, "labs/lab_list.html", {"labs": labs})


@require_GET
@login_required
@ensure_csrf_cookie
def lab_editor(request: HttpRequest, pk: int) -> HttpResponse:
    lab = get_object_or_404(visible_labs(request.user), pk=pk)
    return render(request, "labs/editor.html", {"lab": lab, "editable": can_edit(request.user, lab)})
