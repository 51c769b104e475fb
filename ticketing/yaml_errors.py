"""One-line descriptions of PyYAML parse errors, for messages that name the file themselves.

`str(error)` of a PyYAML error spans several lines and names the source as
`"<unicode string>"` when the text was loaded from a string, so the file name is lost.
"""

from __future__ import annotations

import yaml


def describe_yaml_error(error: yaml.YAMLError) -> str:
    """Return "line L, column C: problem (while ... at line L2, column C2)" for a parse error.

    Lines and columns count from 1, as editors show them. An error without a position
    is returned as PyYAML words it.
    """
    if not isinstance(error, yaml.MarkedYAMLError) or error.problem_mark is None:
        return str(error).strip()

    mark = error.problem_mark
    text = f"line {mark.line + 1}, column {mark.column + 1}: {error.problem}"
    if error.context:
        context_mark = error.context_mark
        if context_mark is not None and (context_mark.line, context_mark.column) != (mark.line, mark.column):
            text += f" ({error.context} started at line {context_mark.line + 1}, column {context_mark.column + 1})"
        else:
            text += f" ({error.context})"
    return text
