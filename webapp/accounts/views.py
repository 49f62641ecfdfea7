"""Sign-up with an invite code (the work is in classroom.services), and the throttled sign-in page."""
from __future__ import annotations

from django.contrib.auth import login
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from webapp.classroom import services as classroom
from webapp.core.throttling import login_allowed

from .forms import SignupForm


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    form = SignupForm(request.POST or None, initial={"code": request.GET.get("code", "")})
    if request.method == "POST" and form.is_valid():
        try:
            user = classroom.sign_up(form.cleaned_data["code"], form.cleaned_data["username"],
                                     form.cleaned_data["password1"])
        except classroom.ValidationError as exc:  # InviteError, or a username/password refused late
            for field, errors in exc.detail.items():
                for error in errors if isinstance(errors, list) else [errors]:
                    form.add_error(field if field in form.fields else None, str(error))
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return redirect("template-list")
    return render(request, "accounts/signup.html", {"form": form})


class ThrottledLoginView(LoginView):
    """Django's sign-in page, with sign-in attempts limited per client address (TOPOLAB_THROTTLE_LOGIN)."""

    def post(self, request, *args, **kwargs):
        allowed, wait = login_allowed(request)
        if not allowed:
            message = f"Too many sign-in attempts; try again in {int(wait or 60) + 1} seconds."
            response = self.render_to_response(self.get_context_data(form=self.get_form(), throttled=message))
            response.status_code = 429
            return response
        return super().post(request, *args, **kwargs)
