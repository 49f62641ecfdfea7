"""The labs REST API. Views parse, authorise and answer; the work happens in `..services`.

Error bodies are `{"errors": [{"path", "message"}]}` (webapp.core.errors); a stale version (409) also carries
`detail` and the current `lab`.
Labs the user may not see answer 404, as if they did not exist.
"""
from __future__ import annotations

from types import SimpleNamespace

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from netops import kinds
from netops.errors import Problem
from webapp.core import errors

from .. import services, uplinks
from ..models import Lab
from ..permissions import LabAccess, visible_labs
from . import serializers as s

LAB_TAG = ["labs"]
BAD = OpenApiResponse(s.ErrorsSerializer, description="Malformed input; each error names its path")
CONFLICT = OpenApiResponse(s.ConflictSerializer, description="Stale version; the body carries the current lab")




class ExportFormatNegotiation(DefaultContentNegotiation):
    """`?format=` chooses the export format here, so it must not also choose a DRF renderer (404 otherwise)."""

    settings = SimpleNamespace(URL_FORMAT_OVERRIDE=None)


class LabViewSet(viewsets.GenericViewSet):
    """Labs of the signed-in user, their documents and the operations on them."""

    permission_classes = viewsets.GenericViewSet.permission_classes + [LabAccess]
    serializer_class = s.LabSerializer
    lookup_value_regex = r"[0-9]+"
    content_negotiation_class = ExportFormatNegotiation

    def get_queryset(self):
        return visible_labs(self.request.user).select_related("owner")

    # -- helpers ------------------------------------------------------------------------------------------------

    def _input(self, serializer_class, data=None) -> dict:
        serializer = serializer_class(data=self.request.data if data is None else data)
        if not serializer.is_valid():
            raise errors.Refusal(errors.flatten(serializer.errors))
        return serializer.validated_data

    def _lab_response(self, saved: services.Saved, code: int = status.HTTP_200_OK, **extra) -> Response:
        context = {"problems": services.problems_as_dicts(saved.problems), "request": self.request}
        body = s.LabSerializer(saved.lab, context=context).data
        return Response({**body, **extra} if extra else body, status=code)

    def _conflict(self, exc: services.VersionConflict) -> Response:
        saved = services.Saved(exc.lab, services.lab_problems(exc.lab))
        lab = s.LabSerializer(saved.lab, context={"problems": services.problems_as_dicts(saved.problems)}).data
        return errors.response([Problem("version", f"The lab was changed elsewhere; it is now at version "
                                                   f"{exc.lab.version}.")], status.HTTP_409_CONFLICT,
                               detail=f"The lab was changed elsewhere; it is now at version {exc.lab.version}.",
                               lab=lab)

    def handle_exception(self, exc):
        if isinstance(exc, services.VersionConflict):  # 409 with the current lab (webapp.core.errors renders the rest)
            return self._conflict(exc)
        return super().handle_exception(exc)

    # -- CRUD ---------------------------------------------------------------------------------------------------

    @extend_schema(operation_id="labs_list", tags=LAB_TAG, summary="List my labs",
                   responses=s.LabSummarySerializer(many=True))
    def list(self, request: Request) -> Response:
        labs = self.get_queryset()
        return Response(s.LabSummarySerializer(labs, many=True).data)

    @extend_schema(operation_id="labs_create", tags=LAB_TAG, summary="Create a lab",
                   description="Creates a lab, empty or from a document. An invalid document is stored; "
                               "the response lists its problems in `errors`.",
                   request=s.LabCreateSerializer, responses={201: s.LabSerializer, 400: BAD})
    def create(self, request: Request) -> Response:
        data = self._input(s.LabCreateSerializer)
        saved = services.create_lab(request.user, data.get("name", ""), data.get("description", ""),
                                    data.get("document"))
        return self._lab_response(saved, status.HTTP_201_CREATED)

    @extend_schema(operation_id="labs_retrieve", tags=LAB_TAG, summary="A lab with its document and problems",
                   responses={200: s.LabSerializer, 404: OpenApiResponse(description="No such lab (or not yours)")})
    def retrieve(self, request: Request, pk=None) -> Response:
        lab = self.get_object()
        return self._lab_response(services.Saved(lab, services.lab_problems(lab)))

    @extend_schema(operation_id="labs_update", tags=LAB_TAG, summary="Replace a lab's document",
                   description="Stores the whole document (and name/description) if `version` is current. "
                               "Invalid documents are saved too (drawing is incremental); `errors` lists why "
                               "they are invalid. A stale `version` answers 409 with the current lab.",
                   request=s.LabWriteSerializer, responses={200: s.LabSerializer, 400: BAD, 409: CONFLICT})
    def update(self, request: Request, pk=None) -> Response:
        lab = self.get_object()
        data = self._input(s.LabWriteSerializer)
        if "document" not in data:
            raise errors.Refusal([Problem("document", "This field is required.")])
        return self._save(lab, data)

    @extend_schema(operation_id="labs_partial_update", tags=LAB_TAG, summary="Change some of a lab's fields",
                   request=s.LabWriteSerializer, responses={200: s.LabSerializer, 400: BAD, 409: CONFLICT})
    def partial_update(self, request: Request, pk=None) -> Response:
        lab = self.get_object()
        return self._save(lab, self._input(s.LabWriteSerializer))

    def _save(self, lab: Lab, data: dict) -> Response:
        try:
            saved = services.save_lab(lab, data["version"], document=data.get("document"),
                                      name=data.get("name"), description=data.get("description"))
        except services.VersionConflict as exc:
            return self._conflict(exc)
        return self._lab_response(saved)

    @extend_schema(operation_id="labs_destroy", tags=LAB_TAG, summary="Delete a lab",
                   description="Only a lab with nothing in the kernel: a deployed lab (or one with a deploy or "
                               "destroy in progress) answers 409; press Destroy first.",
                   responses={204: None, 409: OpenApiResponse(s.DetailSerializer, description="Still deployed")})
    def destroy(self, request: Request, pk=None) -> Response:
        try:
            services.delete_lab(self.get_object())
        except services.LabInUse as exc:
            return errors.response([Problem("", str(exc))], status.HTTP_409_CONFLICT)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(operation_id="labs_uplinks", tags=LAB_TAG, summary="Host bridges this lab may attach to",
                   description="The host bridges an `external` node of this lab may name (the operator's list, "
                               "narrowed by the owner's role or class, and the caller's); NAT is always open.",
                   responses={200: s.UplinksSerializer})
    @action(detail=True, methods=["get"])
    def uplinks(self, request: Request, pk=None) -> Response:
        return Response(uplinks.uplinks_for_lab(self.get_object(), request.user))

    # -- whole-lab actions --------------------------------------------------------------------------------------

    @extend_schema(operation_id="labs_duplicate", tags=LAB_TAG, summary="Copy a lab into a new one of mine",
                   request=s.DuplicateSerializer, responses={201: s.LabSerializer})
    @action(detail=True, methods=["post"])
    def duplicate(self, request: Request, pk=None) -> Response:
        lab = self.get_object()
        data = self._input(s.DuplicateSerializer)
        return self._lab_response(services.duplicate_lab(lab, request.user, data.get("name")), status.HTTP_201_CREATED)

    @extend_schema(operation_id="labs_export", tags=LAB_TAG, summary="Download the lab as YAML",
                   description="`topolab` gives the document (`<name>.yml`); `containerlab` a containerlab "
                               "topology (`<name>.clab.yml`), which needs a valid document.",
                   parameters=[OpenApiParameter("format", str, enum=[*services.EXPORT_FORMATS], default="topolab")],
                   responses={(200, "application/yaml"): OpenApiTypes.STR, 400: BAD})
    @action(detail=True, methods=["get"], url_path="export")
    def export(self, request: Request, pk=None) -> HttpResponse | Response:
        lab = self.get_object()
        fmt = request.query_params.get("format", "topolab")
        if fmt not in services.EXPORT_FORMATS:
            return errors.response([Problem("format", f"unknown format {fmt!r}; one of topolab, containerlab")])
        text = services.export_text(lab, fmt)  # TopologyError (an invalid document) answers 400
        response = HttpResponse(text, content_type="application/yaml; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{services.export_filename(lab, fmt)}"'
        return response

    @extend_schema(operation_id="labs_import", tags=LAB_TAG, summary="Create a lab from a YAML file",
                   description="Multipart `file` (format guessed from `*.clab.yml` or a `topology:` key unless "
                               "`format` is given) or JSON `{format, text}`. Containerlab conversion warnings "
                               "are returned with the new lab.",
                   request={"application/json": s.ImportSerializer, "multipart/form-data": s.ImportSerializer},
                   responses={201: s.ImportResultSerializer, 400: BAD})
    @action(detail=False, methods=["post"], url_path="import",
            parser_classes=[JSONParser, MultiPartParser, FormParser])
    def import_(self, request: Request) -> Response:
        data = self._input(s.ImportSerializer)
        upload = data.get("file")
        if upload is not None:
            if upload.size > services.MAX_DOCUMENT_BYTES:
                raise errors.Refusal([Problem("file", f"is larger than {services.MAX_DOCUMENT_BYTES} bytes")])
            try:
                text = upload.read().decode("utf-8")
            except UnicodeDecodeError:
                raise errors.Refusal([Problem("file", "is not UTF-8 text")]) from None
            filename = upload.name or ""
        elif data.get("text"):
            text, filename = data["text"], ""
        else:
            raise errors.Refusal([Problem("file", "send a file or a text")])
        fmt = data["format"] if data["format"] != "auto" else services.guess_format(filename, text)
        saved, warnings = services.import_text(request.user, fmt, text, data.get("name") or None)
        context = {"problems": services.problems_as_dicts(saved.problems)}
        return Response(
            {"lab": s.LabSerializer(saved.lab, context=context).data,
             "warnings": services.problems_as_dicts(warnings)},
            status=status.HTTP_201_CREATED,
        )


class ValidateView(APIView):
    """Check a document without storing it."""

    @extend_schema(operation_id="validate_document", tags=["labs"], summary="Validate a topology document",
                   description="Answers whether the document is valid and, if not, every problem with its path.",
                   request=s.ValidateSerializer, responses={200: s.ValidationResultSerializer, 400: BAD})
    def post(self, request: Request) -> Response:
        serializer = s.ValidateSerializer(data=request.data)
        if not serializer.is_valid():
            return errors.response(errors.flatten(serializer.errors))
        document = services.check_shape(serializer.validated_data["document"])
        problems = services.validate(document) + uplinks.uplink_problems(document, uplinks.bridges_for(request.user))
        return Response({"valid": not problems, "errors": services.problems_as_dicts(problems)})


class ImageListView(APIView):
    """The VM images a `vm` node may name."""

    @extend_schema(operation_id="images_list", tags=["images"], summary="List VM images",
                   responses=s.ImageSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(services.list_images())


class KindListView(APIView):
    """The node kinds (netops.kinds): their keys, name prefix, interfaces, console, capture, icon; node states."""

    @extend_schema(operation_id="kinds_list", tags=["kinds"], summary="List node kinds",
                   responses=s.KindsSerializer)
    def get(self, request: Request) -> Response:
        return Response(kinds.public())


class UplinkListView(APIView):
    """The host bridges the signed-in user may attach labs to (GET /api/labs/<pk>/uplinks/ narrows it to a lab)."""

    @extend_schema(operation_id="uplinks_list", tags=["labs"], summary="Host bridges I may attach labs to",
                   responses=s.UplinksSerializer)
    def get(self, request: Request) -> Response:
        return Response({"bridges": list(uplinks.bridges_for(request.user)), "nat": True})
