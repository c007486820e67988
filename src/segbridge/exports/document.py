"""The parts of a flow document, and an export section's base, for the applications.

An application that can be a source declares the model of its export section (one model
per export kind, e.g. ``type: csv``); the flow document (``flows/document.py``) builds its
union of export kinds from those models, read from the registry. The machinery every part
shares lives here, beside the export contract, because applications import ``exports``,
never ``flows``:

- ``DocumentPart``: a mapping of the document whose problems are all reported at once, at
  their field paths and in our words: what to write when the part is not a mapping
  (``shape``), for a field missing or of the wrong type (``hints``); the checks pydantic
  cannot make raise ``problem(...)``.
- ``ExportBase``: what every export kind takes (``key_field``), keys of another kind kept
  (documents written before the kinds were told apart still import); the checks an export
  needs from the account when a flow is saved (``account_problems``: a file the access policy
  allows, an upload of the account) and the connection it names (``connection_name``).
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, ClassVar, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidationInfo,
    model_serializer,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from segbridge.core.access import AccessPolicy
from segbridge.core.errors import FieldProblem

PROBLEM = "flow_problem"  # the pydantic error type of a problem phrased in our words
STORED = "stored"  # validation context: a stored document, checked when it was saved
Location = tuple[int | str, ...]


def problem(message: str) -> PydanticCustomError:
    """A problem of the value being validated, in our words (at the value's location)."""
    return PydanticCustomError(PROBLEM, "{message}", {"message": message})


def located(location: Location, message: str, value: object = None) -> InitErrorDetails:
    """A problem in our words at ``location`` (relative to the part being validated)."""
    return InitErrorDetails(type=problem(message), loc=location, input=value)


def checked(info: ValidationInfo) -> bool:
    """False for a stored document: its expressions, crons and mappings were checked when
    it was saved (a rule that tightens later must not make a saved flow unreadable)."""
    return not (isinstance(info.context, Mapping) and info.context.get(STORED))


class DocumentPart(BaseModel):
    """A mapping of the document: its unknown keys are refused, and every problem pydantic
    finds is reworded with the part's own ``shape`` and ``hints``."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)

    shape: ClassVar[str] = "use a mapping"  # what to write when the part is not one
    hints: ClassVar[Mapping[str, str]] = {}  # field -> what to write (missing, wrong type)
    problem_order: ClassVar[tuple[str, ...]] = ()  # fields whose problems come first

    @classmethod
    def shape_problem(cls, data: object) -> bool:
        """True when the part is not even the right shape: one problem, at the part."""
        return not isinstance(data, Mapping)

    @classmethod
    def more_problems(cls, data: Mapping[str, object],
                      info: ValidationInfo) -> list[InitErrorDetails]:
        """The problems that need more than one field (or the raw document) to see."""
        return []

    @classmethod
    def unchecked(cls, data: Mapping[str, object]) -> set[str]:
        """Fields not checked because a field they depend on is wrong (a mapping without a
        call type): their problems would only follow from that one."""
        return set()

    @classmethod
    def known_keys(cls) -> list[str]:
        return sorted(field.alias or name for name, field in cls.model_fields.items())

    @model_validator(mode="wrap")
    @classmethod
    def _in_product_words(cls, data: object, handler: ModelWrapValidatorHandler[Self],
                          info: ValidationInfo) -> Self:
        if isinstance(data, cls):
            return data
        if cls.shape_problem(data):
            raise problem(cls.shape)
        assert isinstance(data, Mapping)
        problems = cls.more_problems(data, info)
        try:
            part = handler(data)
        except ValidationError as exc:
            unchecked = cls.unchecked(data)
            problems = [*(one for one in cls._reworded(exc)
                          if not (one["loc"] and one["loc"][0] in unchecked)), *problems]
            raise cls._all_at_once(data, problems) from None
        if problems:
            raise cls._all_at_once(data, problems)
        return part

    @classmethod
    def _all_at_once(cls, data: Mapping[str, object],
                     problems: list[InitErrorDetails]) -> ValidationError:
        """Every problem, unknown keys first, then field by field in the document's order."""
        order = [*cls.problem_order, *cls.model_fields]

        def place(one: InitErrorDetails) -> tuple[int, int]:
            field = one["loc"][0] if one["loc"] else None
            if isinstance(field, str) and field not in order:
                return (0, list(data).index(field) if field in data else 0)
            return (1, order.index(field) if field in order else len(order))

        return ValidationError.from_exception_data(cls.__name__,
                                                   sorted(unique(problems), key=place))

    # No return annotation, on purpose: pydantic then describes the part's JSON by its
    # fields (an annotated ``dict`` would describe it as any mapping in the OpenAPI document).
    @model_serializer(mode="wrap")
    def _as_written(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        """The part as JSON with only the keys it was written with (no defaults added)."""
        written = set(self.model_fields_set) | set(self.model_extra or {})
        return {key: value for key, value in handler(self).items() if key in written}

    @classmethod
    def _reworded(cls, exc: ValidationError) -> Iterator[InitErrorDetails]:
        for error in exc.errors():
            location = tuple(error["loc"])
            if error["type"] == PROBLEM:
                yield located(location, error["msg"], error.get("input"))
            elif error["type"] == "extra_forbidden":
                yield located(location, f"unknown key; use one of: "
                                        f"{', '.join(cls.known_keys())}")
            elif location and location[0] in cls.hints:
                yield located(location[:1], cls.hints[str(location[0])], error.get("input"))
            else:
                yield located(location, error["msg"], error.get("input"))


def unique(problems: list[InitErrorDetails]) -> list[InitErrorDetails]:
    """One problem per place and message (a union's branches fail alike)."""
    seen: set[tuple[Location, str]] = set()
    kept = []
    for one in problems:
        key = (tuple(one["loc"]), str(one["type"]))
        if key not in seen:
            seen.add(key)
            kept.append(one)
    return kept


# ---- values an export section may take -------------------------------------------------------

def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("blank")  # reworded with the field's hint
    return value


def _encoding(value: object) -> object:
    try:
        codecs.lookup(str(value))
    except LookupError:
        raise problem(f"unknown encoding '{value}'") from None
    return value


def _truth(value: object) -> bool:
    """Any value was taken for its truth before there were types: kept, so that documents
    written then still import."""
    return bool(value)


NotBlank = Annotated[str, AfterValidator(_not_blank)]
Encoding = Annotated[str, BeforeValidator(_encoding)]
OneCharacter = Annotated[str, Field(min_length=1, max_length=1)]
Truth = Annotated[bool, BeforeValidator(_truth)]


# ---- the export section -----------------------------------------------------------------------

@dataclass(frozen=True)
class SourceAccess:
    """What an export's checks may consult when a flow is saved: the install's access policy
    and the account's uploads (``has_upload(upload_id)``)."""

    policy: AccessPolicy
    has_upload: Callable[[str], bool]


class ExportBase(DocumentPart):
    """What every export kind takes. Keys of another kind are kept and ignored (documents
    written before the kinds were told apart still import); a key no kind takes is refused
    by the flow document, which knows every kind."""

    model_config = ConfigDict(extra="allow")
    hints: ClassVar[Mapping[str, str]] = {"key_field": "name a field, e.g. order_id"}
    problem_order: ClassVar[tuple[str, ...]] = ("type", "key_field")

    if TYPE_CHECKING:
        type: str  # each kind declares its own: ``type: Literal["<kind>"]``

    key_field: Annotated[str, Field(min_length=1)] | None = Field(
        default=None, description="the record's stable key (messageIds)")

    def connection_name(self) -> str | None:
        """The connection the export reads through, by name or id (None: it has none)."""
        return None

    def account_problems(self, access: SourceAccess) -> list[FieldProblem]:
        """What the account or the install refuses in this export (a file outside the
        allowed roots, an upload of another account), at the document's field paths."""
        return []
