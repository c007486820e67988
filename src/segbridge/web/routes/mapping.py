"""The mapping editor of one import, with its live preview (nothing is sent).

    GET  /flows/{id}/imports/{n}/mapping            the editor (n: the import's index, or
                                                    ``new`` with ?name=&connection=&call=)
    POST /flows/{id}/imports/{n}/mapping/preview    the preview region, and each field's
                                                    problems out of band (htmx, debounced)
    POST /flows/{id}/imports/{n}/mapping/form       the call's fields for another call type
    POST /flows/{id}/imports/{n}/mapping            save: one FlowService.update, then 303 to
                                                    the flow; problems: 422 at their fields

The form <-> mapping translation is ``web.mapping_form`` (pure). The preview is the flow's
document with this import as edited, through ``flows.preview.preview``; while the mapping
has problems, the records are shown without calls (the document without imports).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from segbridge.core.errors import (
    FieldProblem,
    NotFound,
    PermissionDenied,
    SegbridgeError,
    ValidationFailed,
)
from segbridge.flows.preview import preview
from segbridge.flows.views import FlowPublic, PreviewPublic
from segbridge.mapping.calls import CALL_FIELDS
from segbridge.web import mapping_form as mf
from segbridge.web.auth import CheckedForm, MayEditFlows, MayPreview, WebUser, runtime_of
from segbridge.web.rendering import render

router = APIRouter(include_in_schema=False)
BASE: Final = "/flows/{flow_id}/imports/{n}/mapping"
LIMITS: Final = (5, 10, 20)
NEW: Final = "new"
IMPORT_SLOTS: Final = ("name", "connection", "call")


@dataclass
class Target:
    """The import being edited: its flow, its index in the document, and whether it is new."""

    flow: FlowPublic
    n: str
    index: int
    existing: dict[str, Any] | None

    @property
    def base(self) -> str:
        return f"/flows/{self.flow.id}/imports/{self.n}/mapping"


@dataclass
class Editor:
    """Everything the editor shows."""

    target: Target
    name: str
    connection: str
    form: mf.MappingForm
    limit: int = LIMITS[0]
    problems: list[FieldProblem] = field(default_factory=list)  # relative to the import
    preview: PreviewPublic | None = None
    general: list[FieldProblem] = field(default_factory=list)  # not about this import
    calls_shown: bool = True
    paths: list[str] = field(default_factory=list)

    def context(self) -> dict[str, Any]:
        issues = mf.expression_issues(self.form)
        errors = mf.errors_by_slot(self.problems, self.form, issues)
        return {"editor": self, "form": self.form, "errors": errors, "issues": issues,
                "flow": self.target.flow, "base": self.target.base,
                "fields": mf.call_fields(self.form.call),
                "payload": mf.payload_key(self.form.call), "calls": list(CALL_FIELDS),
                "kinds": mf.KIND_LABELS, "row_kinds": mf.KINDS, "limits": LIMITS,
                "preview": self.preview, "general": self.general,
                "slots": _slots(self.form),
                "blank_rows": _blanks(self.form.payload, 2),
                "blank_context_rows": _blanks(self.form.context, 1), "blank_row": mf.Row(),
                "integrations_info": mf.FieldInfo(mf.INTEGRATIONS, mf.INTEGRATIONS, "")}


# ---- routes ---------------------------------------------------------------------------------

@router.get(BASE)
def editor_page(request: Request, flow_id: str, n: str, user: MayEditFlows, name: str = "",
                connection: str = "", call: str = "track", limit: str = "") -> Response:
    target = _target(request, user, flow_id, n)
    if target is None:
        return _not_found(user, flow_id)
    if target.existing is not None:
        imp = target.existing
        form, _fits = mf.form_from_mapping(str(imp.get("call")), imp.get("mapping"))
        editor = Editor(target, str(imp.get("name", "")), str(imp.get("connection", "")), form)
    else:
        form = mf.MappingForm(call=call if call in CALL_FIELDS else "track")
        editor = Editor(target, name or _new_name(target), connection, form)
    editor.limit = _limit(limit)
    _fill_preview(request, user, editor, with_paths=True)
    return _page(request, user, editor)


@router.post(BASE + "/preview")
def preview_region(request: Request, flow_id: str, n: str, user: MayPreview,
                   posted: CheckedForm) -> Response:
    target = _target(request, user, flow_id, n)
    if target is None:
        return _not_found(user, flow_id)
    editor = _posted_editor(target, posted)
    _fill_preview(request, user, editor)
    return render("mapping/_preview_response.html", user=user, **editor.context())


@router.post(BASE + "/form")
def call_fields(request: Request, flow_id: str, n: str, user: MayEditFlows,
                posted: CheckedForm) -> Response:
    target = _target(request, user, flow_id, n)
    if target is None:
        return _not_found(user, flow_id)
    editor = _posted_editor(target, posted)
    _fill_preview(request, user, editor)
    return render("mapping/_fields_response.html", user=user, **editor.context())


@router.post(BASE)
def save(request: Request, flow_id: str, n: str, user: MayEditFlows,
         posted: CheckedForm) -> Response:
    target = _target(request, user, flow_id, n)
    if target is None:
        return _not_found(user, flow_id)
    editor = _posted_editor(target, posted)
    mapping, problems = mf.mapping_from_form(editor.form)
    if not problems:
        doc = _document(target, editor, mapping)
        try:
            runtime_of(request).flows.update(user.principal, flow_id, doc, unfinished=True)
        except ValidationFailed as exc:
            problems = exc.problems
        except SegbridgeError as exc:  # e.g. a conflict: say it above the preview
            problems = [FieldProblem("flow", exc.message)]
        else:
            return RedirectResponse(f"/flows/{flow_id}", status_code=303)
    _fill_preview(request, user, editor, with_paths=True, extra=problems)
    return _page(request, user, editor, status=422)


# ---- the import and its document ------------------------------------------------------------

def _target(request: Request, user: WebUser, flow_id: str, n: str) -> Target | None:
    try:
        flow = runtime_of(request).flows.get(user.principal, flow_id)
    except NotFound:
        return None
    imports = _imports(flow)
    if n == NEW:
        return Target(flow, n, len(imports), None)
    if not n.isdigit() or int(n) >= len(imports):
        return None
    return Target(flow, n, int(n), imports[int(n)])


def _imports(flow: FlowPublic) -> list[dict[str, Any]]:
    imports = flow.definition.as_written().get("imports")
    return [dict(imp) for imp in imports if isinstance(imp, dict)] \
        if isinstance(imports, list) else []


def _new_name(target: Target) -> str:
    taken = {str(imp.get("name", "")).casefold() for imp in _imports(target.flow)}
    count = 1
    while (name := "Segment" if count == 1 else f"Segment {count}").casefold() in taken:
        count += 1
    return name


def _posted_editor(target: Target, posted: FormData) -> Editor:
    data = {key: value for key, value in posted.multi_items() if isinstance(value, str)}
    form = mf.form_from_post(data)
    if form.call not in CALL_FIELDS:
        form.call = "track"
    return Editor(target, data.get("name", "").strip(), data.get("connection", "").strip(),
                  form, _limit(data.get("limit", "")))


def _limit(text: str) -> int:
    """How many records the preview shows: one of LIMITS (the first when not)."""
    return int(text) if text.isdigit() and int(text) in LIMITS else LIMITS[0]


def _document(target: Target, editor: Editor, mapping: dict[str, Any] | None) -> dict[str, Any]:
    """The flow's document with this import as edited (``mapping`` None: with no import at
    all, for the records alone)."""
    doc = target.flow.definition.as_written()
    imports = _imports(target.flow)
    if mapping is None:
        imports = []
    else:
        imp = {"name": editor.name, "connection": editor.connection, "call": editor.form.call,
               "mapping": mapping}
        if target.existing is None:
            imports.append(imp)
        else:
            imports[target.index] = imp
    doc["imports"] = imports
    return doc


# ---- the preview ----------------------------------------------------------------------------

def _fill_preview(request: Request, user: WebUser, editor: Editor, *,
                  with_paths: bool = False, extra: list[FieldProblem] | None = None) -> None:
    """The preview of the document with this import; while it has problems, its records
    without this import's calls, and the problems at their fields (``extra``: those a save
    found, as the document's paths)."""
    runtime = runtime_of(request)
    mapping, form_problems = mf.mapping_from_form(editor.form)
    problems = list(form_problems)
    if not editor.form.yaml_mode:
        editor.form.yaml = mf.mapping_yaml(mapping)
    result: PreviewPublic | None = None
    if not form_problems:
        try:
            result = preview(runtime, user.principal, None,
                             _document(editor.target, editor, mapping), editor.limit)
        except ValidationFailed as exc:
            problems += exc.problems
        except (PermissionDenied, SegbridgeError) as exc:
            problems.append(FieldProblem("preview", exc.message))
    if result is None:
        editor.calls_shown = False
        try:
            result = preview(runtime, user.principal, None,
                             _document(editor.target, editor, None), editor.limit)
        except ValidationFailed as exc:
            problems += exc.problems
        except (PermissionDenied, SegbridgeError) as exc:
            problems.append(FieldProblem("preview", exc.message))
    editor.preview = result
    problems = mf.import_problems([*(extra or []), *problems], editor.target.index)
    _split(editor, _unique(problems))
    if with_paths and result is not None:
        editor.paths = mf.field_paths(record.data for record in result.records)


def _split(editor: Editor, problems: list[FieldProblem]) -> None:
    """This import's problems go to its fields; the others above the preview."""
    mine = [p for p in problems if p.field.split(".")[0] in (*IMPORT_SLOTS, "mapping", "p",
                                                               "c", "f", mf.YAML_MODE)]
    editor.problems = mine
    editor.general = [p for p in problems if p not in mine]


def _unique(problems: list[FieldProblem]) -> list[FieldProblem]:
    seen: dict[tuple[str, str], FieldProblem] = {}
    for problem in problems:
        seen.setdefault((problem.field, problem.message), problem)
    return list(seen.values())


def _blanks(obj: mf.ObjectForm, when_empty: int) -> int:
    """Empty rows to add at the end: none when the last one is empty already."""
    if not obj.rows:
        return when_empty
    return 0 if obj.rows[-1].blank else 1


def _slots(form: mf.MappingForm) -> list[str]:
    """Every slot the editor has an error element for (refreshed out of band)."""
    slots = [*IMPORT_SLOTS, "mapping", mf.YAML_MODE]
    slots += [f"f.{info.key}" for info in mf.call_fields(form.call)]
    slots += ["f.timestamp.format", "f.timestamp.timezone", "f.integrations", "c"]
    slots += [f"c.{i}" for i in range(len(form.context.rows) or 1)]
    if mf.payload_key(form.call):
        slots += ["p", "p.all_other_fields", "p.exclude"]
        slots += [f"p.{i}" for i in range(len(form.payload.rows) or 1)]
    return slots


# ---- pages ----------------------------------------------------------------------------------

def _page(request: Request, user: WebUser, editor: Editor, *, status: int = 200) -> Response:
    connections = [c for c in runtime_of(request).connections.list_all(user.principal)
                   if c.application == "segment"]
    return render("mapping/editor.html", status=status, user=user, nav="flows",
                  connections=connections, **editor.context())


def _not_found(user: WebUser, flow_id: str) -> Response:
    return render("error.html", status=404, user=user, heading="Not found",
                  message=f"No flow with id '{flow_id}' has an import there. Go back to the "
                          "flow and choose the destination again.")
