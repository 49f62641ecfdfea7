"""The classroom REST API: classes (instructors), templates (publish, browse, start), lab instructions.

Things a caller may not see answer 404, as in the labs API. Each view's description says who may call it.
"""
from __future__ import annotations

from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.core.strict import body_problems
from webapp.labs.models import Lab
from webapp.labs.permissions import can_view, visible_labs

from .. import services
from ..models import Classroom, Template
from . import serializers as s

CLASS_TAG, TEMPLATE_TAG = ["classroom"], ["templates"]
NOT_FOUND = OpenApiResponse(description="No such object, or you may not see it")
FORBIDDEN = OpenApiResponse(description="You may see it but not do this")
INSTRUCTORS = "Who may call: instructors of the class (others get 404)."


def _class(request: Request, pk: int) -> Classroom:
    try:
        return services.class_for_instructor(request.user, pk)
    except Classroom.DoesNotExist:
        raise Http404 from None


def _template(request: Request, pk: int | None = None, token: str | None = None) -> Template:
    try:
        return services.template_for(request.user, pk=pk, token=token)
    except Template.DoesNotExist:
        raise Http404 from None


def _no_body(request: Request) -> None:
    """Actions without a body refuse one with fields, naming them (400)."""
    unknown = body_problems(request)
    if unknown:
        raise ValidationError({k: [m] for k, m in unknown})


def _started(lab: Lab) -> dict:
    return {"id": lab.pk, "lab_id": lab.lab_id, "name": lab.name, "url": f"/labs/{lab.pk}/"}


class ClassListView(APIView):
    @extend_schema(operation_id="classes_list", tags=CLASS_TAG, summary="Classes I instruct",
                   description="Who may call: any signed-in user (the list is empty unless you instruct).",
                   responses=s.ClassroomSerializer(many=True))
    def get(self, request: Request) -> Response:
        classes = services.taught_classes(request.user).prefetch_related("instructors", "members")
        return Response(s.ClassroomSerializer(classes, many=True).data)

    @extend_schema(operation_id="classes_create", tags=CLASS_TAG, summary="Create a class",
                   description="Who may call: instructors and the operator (staff); you become its instructor.",
                   request=s.ClassroomCreateSerializer, responses={201: s.ClassroomSerializer, 403: FORBIDDEN})
    def post(self, request: Request) -> Response:
        data = s.ClassroomCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        classroom = services.create_classroom(request.user, data.validated_data["name"])
        return Response(s.ClassroomSerializer(classroom).data, status=status.HTTP_201_CREATED)


class ClassDetailView(APIView):
    @extend_schema(operation_id="classes_retrieve", tags=CLASS_TAG, summary="A class with members and codes",
                   description=INSTRUCTORS, responses={200: s.ClassroomDetailSerializer, 404: NOT_FOUND})
    def get(self, request: Request, pk: int) -> Response:
        return Response(s.ClassroomDetailSerializer(_class(request, pk)).data)

    @extend_schema(operation_id="classes_partial_update", tags=CLASS_TAG, summary="Change a class",
                   description=f"{INSTRUCTORS} `uplink_bridges`: the host bridges the class's members may attach "
                               "their labs to, out of those you may use yourself.",
                   request=s.ClassroomUpdateSerializer, responses={200: s.ClassroomDetailSerializer, 404: NOT_FOUND})
    def patch(self, request: Request, pk: int) -> Response:
        classroom = _class(request, pk)
        data = s.ClassroomUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        classroom = services.update_classroom(classroom, request.user, **data.validated_data)
        return Response(s.ClassroomDetailSerializer(classroom).data)


class InviteCreateView(APIView):
    @extend_schema(operation_id="classes_invites_create", tags=CLASS_TAG, summary="Create an invite code",
                   description=f"{INSTRUCTORS} New users sign up at `signup_url` and join the class.",
                   request=s.InviteCreateSerializer, responses={201: s.InviteSerializer, 404: NOT_FOUND})
    def post(self, request: Request, pk: int) -> Response:
        classroom = _class(request, pk)
        data = s.InviteCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        invite = services.create_invite(classroom, request.user, **data.validated_data)
        return Response(s.InviteSerializer(invite).data, status=status.HTTP_201_CREATED)


class MemberView(APIView):
    @extend_schema(operation_id="classes_members_destroy", tags=CLASS_TAG, summary="Remove a member",
                   description=f"{INSTRUCTORS} The user and their labs stay; you no longer see those labs.",
                   request=None, responses={204: None, 404: NOT_FOUND})
    def delete(self, request: Request, pk: int, user_pk: int) -> Response:
        classroom = _class(request, pk)
        _no_body(request)
        if not classroom.members.filter(pk=user_pk).exists():
            raise Http404
        services.remove_member(classroom, user_pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ClassLabsView(APIView):
    @extend_schema(operation_id="classes_labs_list", tags=CLASS_TAG, summary="The class's labs and their states",
                   description=f"{INSTRUCTORS} Every lab of every member, with the last known deploy state "
                               "(from the runs app) and the active run.",
                   responses={200: s.LabRowSerializer(many=True), 404: NOT_FOUND})
    def get(self, request: Request, pk: int) -> Response:
        return Response(s.LabRowSerializer(services.class_labs(_class(request, pk)), many=True).data)


class TemplateListView(APIView):
    @extend_schema(operation_id="templates_list", tags=TEMPLATE_TAG, summary="Templates I may start",
                   description="Who may call: any signed-in user. Lists your own templates, public ones, and "
                               "class templates of classes you are a member or instructor of. Link templates "
                               "of others are reached only through their share link.",
                   responses=s.TemplateSerializer(many=True))
    def get(self, request: Request) -> Response:
        templates = services.visible_templates(request.user).select_related("owner").prefetch_related("classrooms")
        return Response(s.TemplateSerializer(templates, many=True, context={"request": request}).data)

    @extend_schema(operation_id="templates_create", tags=TEMPLATE_TAG, summary="Publish a lab as a template",
                   description="Who may call: instructors (and the operator), for their own valid labs, "
                               "for classes they instruct. Freezes a copy of the lab's document as version 1.",
                   request=s.PublishSerializer, responses={201: s.TemplateDetailSerializer, 403: FORBIDDEN})
    def post(self, request: Request) -> Response:
        data = s.PublishSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        lab = fields.pop("lab")
        if not can_view(request.user, lab):
            raise PermissionDenied("You may only publish your own labs.")
        template = services.publish(request.user, lab, **fields)
        return Response(s.TemplateDetailSerializer(template, context={"request": request}).data,
                        status=status.HTTP_201_CREATED)


class TemplateDetailView(APIView):
    @extend_schema(operation_id="templates_retrieve", tags=TEMPLATE_TAG, summary="A template",
                   description="Who may call: users the template is visible to (see templates_list).",
                   responses={200: s.TemplateDetailSerializer, 404: NOT_FOUND})
    def get(self, request: Request, pk: int) -> Response:
        return Response(s.TemplateDetailSerializer(_template(request, pk), context={"request": request}).data)


class TemplatePublishView(APIView):
    @extend_schema(operation_id="templates_publish", tags=TEMPLATE_TAG, summary="Publish a new version",
                   description="Who may call: the template's owner. Freezes the source lab's current document "
                               "as the next version; labs started earlier keep theirs.",
                   request=s.PublishAgainSerializer, responses={201: s.TemplateDetailSerializer, 403: FORBIDDEN,
                                                                404: NOT_FOUND})
    def post(self, request: Request, pk: int) -> Response:
        template = _template(request, pk)
        data = s.PublishAgainSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        lab = fields.pop("lab", None)
        services.publish_again(request.user, template, lab, **fields)
        return Response(s.TemplateDetailSerializer(template, context={"request": request}).data,
                        status=status.HTTP_201_CREATED)


class TemplateStartView(APIView):
    @extend_schema(operation_id="templates_start", tags=TEMPLATE_TAG, summary="Start lab: clone into my labs",
                   description="Who may call: users the template is visible to. Creates a new lab of yours "
                               "(with its own lab id) from the latest version; deploy it at once.",
                   request=None, responses={201: s.StartedLabSerializer, 404: NOT_FOUND})
    def post(self, request: Request, pk: int) -> Response:
        template = _template(request, pk)
        _no_body(request)
        lab = services.start_lab(request.user, template)
        return Response(_started(lab), status=status.HTTP_201_CREATED)


class SharedTemplateView(APIView):
    @extend_schema(operation_id="templates_shared_retrieve", tags=TEMPLATE_TAG, summary="A template by share link",
                   description="Who may call: any signed-in user holding the share token of a link template.",
                   responses={200: s.TemplateDetailSerializer, 404: NOT_FOUND})
    def get(self, request: Request, token: str) -> Response:
        template = _template(request, token=token)
        return Response(s.TemplateDetailSerializer(template, context={"request": request}).data)


class SharedTemplateStartView(APIView):
    @extend_schema(operation_id="templates_shared_start", tags=TEMPLATE_TAG, summary="Start lab from a share link",
                   description="Who may call: any signed-in user holding the share token of a link template.",
                   request=None, responses={201: s.StartedLabSerializer, 404: NOT_FOUND})
    def post(self, request: Request, token: str) -> Response:
        template = _template(request, token=token)
        _no_body(request)
        lab = services.start_lab(request.user, template)
        return Response(_started(lab), status=status.HTTP_201_CREATED)


class LabInstructionsView(APIView):
    @extend_schema(operation_id="labs_instructions", tags=["labs"], summary="Instructions of the lab's template",
                   description="Who may call: whoever may view the lab (owner; instructors of the owner's "
                               "classes). The Markdown of the template version the lab was started from, and "
                               "its safe HTML; all fields null/empty for a lab not started from a template.",
                   responses={200: s.InstructionsSerializer, 404: NOT_FOUND})
    def get(self, request: Request, pk: int) -> Response:
        lab = get_object_or_404(visible_labs(request.user), pk=pk)
        if not can_view(request.user, lab):
            raise Http404
        info = services.lab_instructions(lab) or {"template": None, "template_id": None, "version": None,
                                                  "markdown": "", "html": ""}
        return Response(info)
