from __future__ import annotations

from django import forms

from .models import Classroom, Visibility


class PublishForm(forms.Form):
    title = forms.CharField(max_length=100)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    instructions = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 10}),
                                   help_text="Markdown, shown beside the canvas. Raw HTML is shown as text.")
    visibility = forms.ChoiceField(choices=Visibility.choices, initial=Visibility.CLASS)
    classrooms = forms.ModelMultipleChoiceField(queryset=Classroom.objects.none(), required=False,
                                                widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args, classrooms=None, **kwargs):
        super().__init__(*args, **kwargs)
        if classrooms is not None:
            self.fields["classrooms"].queryset = classrooms


class ClassroomForm(forms.Form):
    name = forms.CharField(max_length=100)


class InviteForm(forms.Form):
    max_uses = forms.IntegerField(min_value=1, initial=50)
    expires = forms.DateTimeField(required=False, help_text="YYYY-MM-DD HH:MM, empty: never")
