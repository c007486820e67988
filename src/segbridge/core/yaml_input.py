"""YAML a user sends (a flow document, a mapping): parsed once, refused when too long or when
its aliases expand to too many values (a "billion laughs" document), before anything is built
from it."""

from __future__ import annotations

import yaml

from segbridge.core.errors import FieldProblem, ValidationFailed

MAX_YAML_CHARS = 1_000_000
MAX_YAML_VALUES = 100_000  # counted with every alias expanded


def load_yaml(text: str, field: str = "yaml") -> object:
    """The document; ValidationFailed (at ``field``) when it is not YAML, too long, or
    expands through aliases to more than ``MAX_YAML_VALUES`` values."""
    if len(text) > MAX_YAML_CHARS:
        raise ValidationFailed([FieldProblem(
            field, f"the file is longer than {MAX_YAML_CHARS:,} characters; a flow "
                   "document is much shorter: check that this is the right file")])
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        if _expanded_size(root) > MAX_YAML_VALUES:
            raise ValidationFailed([FieldProblem(
                field, f"the document expands to more than {MAX_YAML_VALUES:,} values "
                       "(through YAML aliases); write it out without them")])
        return loader.construct_document(root)
    except yaml.YAMLError as exc:
        raise ValidationFailed([FieldProblem(field, f"not valid YAML: {exc}")]) from None
    finally:
        loader.dispose()


def _expanded_size(root: yaml.Node) -> int:
    """How many values the document has once every alias is expanded (stops past the cap)."""
    count, stack = 0, [root]
    while stack and count <= MAX_YAML_VALUES:
        node = stack.pop()
        count += 1
        if isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.extend((key, value))
    return count
