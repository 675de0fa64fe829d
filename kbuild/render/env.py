"""The Jinja environment over templates/: strict about undefined names, user templates first.

Every Jinja failure (missing template, syntax error, undefined variable, a failing expression)
comes out as a TemplateError naming the template file, the line and, where there is one, the
variable: never a Jinja traceback.
"""

from __future__ import annotations

import functools
import hashlib
import re
from pathlib import Path
from types import TracebackType
from typing import Any

import jinja2

from kbuild.engine.shell import command, word
from kbuild.errors import UsageError

# Installed: the wheel carries templates/ as kbuild/templates. Source checkout: ../templates.
_PACKAGE_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
_SOURCE_TEMPLATES = Path(__file__).resolve().parent.parent.parent / "templates"


def shipped_templates_dir() -> Path:
    for candidate in (_PACKAGE_TEMPLATES, _SOURCE_TEMPLATES):
        if candidate.is_dir():
            return candidate
    raise UsageError(f"kbuild's templates are missing (looked in {_PACKAGE_TEMPLATES} and {_SOURCE_TEMPLATES})",
                     hint="reinstall kbuild")


class TemplateError(UsageError):
    """A template that cannot be rendered, located by file and line."""

    def __init__(self, template: str, file: str | None, line: int | None, message: str,
                 variable: str | None = None, hint: str | None = None) -> None:
        where = file or template
        if line is not None:
            where = f"{where}:{line}"
        super().__init__(f"{where}: {message} (template {template})", hint=hint)
        self.template = template
        self.file = file
        self.line = line
        self.variable = variable


class UnsafeValue(ValueError):
    """A value with a control character reached a template: it would add lines to a unit or a script."""


_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # every control character but the tab
_ANY_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_one_line(value: object, where: str = "") -> None:
    """Every string a template is given, however deep: a line break or other control character in one would
    start a new directive in a unit, or a new command after a comment in a script. The inventory refuses them
    at load; this is the second layer, for values from anywhere else."""
    if isinstance(value, str):
        if _CONTROL.search(value):
            raise UnsafeValue(f"{where or 'a value'}: {value[:80]!r} contains a line break or control character")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_one_line(key, where)
            check_one_line(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, (list, tuple, set, frozenset)):
        for index, item in enumerate(value):
            check_one_line(item, f"{where}.{index}")


def systemd_escape(value: object) -> str:
    """Quote one ExecStart argument so systemd passes it through unchanged."""
    text = str(value).replace("%", "%%").replace("$", "$$")
    if text and not re.search(r'[\s"\'\\;]', text) and text.isprintable():
        return text
    quoted = text.replace("\\", "\\\\").replace('"', '\\"')
    # A control character (a newline above all) would end the line, and so the directive: systemd reads
    # C escapes inside quotes, so it gets the character back as part of the argument.
    quoted = _ANY_CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}", quoted)
    return '"' + quoted + '"'


@functools.lru_cache(maxsize=8)
def environment(user_dir: str | None) -> jinja2.Environment:
    """One environment per user templates directory (None: the shipped templates only)."""
    search = ([user_dir] if user_dir else []) + [str(shipped_templates_dir())]
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader([jinja2.FileSystemLoader(d) for d in search]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["systemd_escape"] = systemd_escape
    # A list of arguments as one shell command line, each quoted (for `sh -c` in units and scripts).
    env.filters["shell_command"] = lambda args: command(*args)
    env.filters["shell_quote"] = word
    env.filters["sha256"] = lambda text: hashlib.sha256(str(text).encode()).hexdigest()
    env.globals["search_path"] = tuple(search)
    return env


def check_context(name: str, context: dict[str, Any]) -> None:
    """Refuse a context with a multi-line value, naming the template it was for (see check_one_line)."""
    try:
        check_one_line(context)
    except UnsafeValue as exc:
        raise TemplateError(name, None, None, str(exc), hint="values in units and scripts are one line each") from None


def render(env: jinja2.Environment, name: str, context: dict[str, Any], *, checked: frozenset[str] = frozenset()) -> str:
    """Render template `name` with `context`; any failure is a TemplateError.

    `checked` names top-level variables the caller already passed through check_context: a host's
    shared context (all the other nodes' routes among it) is checked once, not once per template.
    """
    check_context(name, {k: v for k, v in context.items() if k not in checked})
    try:
        return env.get_template(name).render(context)
    except jinja2.TemplateNotFound as exc:
        located = _template_frame(exc.__traceback__, env)
        if located is None:  # the top-level template itself
            dirs = " then ".join(env.globals["search_path"])  # type: ignore[arg-type]
            raise TemplateError(name, None, None, f"template {exc.name!r} not found (searched {dirs})") from None
        raise TemplateError(name, *located, f"template {exc.name!r} not found") from None
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(exc.name or name, exc.filename, exc.lineno, f"syntax error: {exc.message}") from None
    except jinja2.UndefinedError as exc:
        variable = _undefined_name(str(exc))
        file, line = _template_frame(exc.__traceback__, env) or (None, None)
        known = ", ".join(sorted(context))
        raise TemplateError(name, file, line, f"undefined variable {variable!r}" if variable else exc.message or "",
                            variable=variable, hint=f"top-level variables are: {known}") from None
    except Exception as exc:  # a failing filter or expression inside a template
        located = _template_frame(exc.__traceback__, env)
        if located is None:
            raise
        raise TemplateError(name, *located, f"{type(exc).__name__}: {exc}") from None


def _undefined_name(message: str) -> str | None:
    match = re.search(r"has no attribute '([^']+)'", message) or re.match(r"'([^']+)' is undefined", message)
    return match.group(1) if match else None


def _template_frame(tb: TracebackType | None, env: jinja2.Environment) -> tuple[str, int] | None:
    """The innermost traceback frame inside a template file (Jinja rewrites frames to point there)."""
    roots = [Path(d).resolve() for d in env.globals["search_path"]]  # type: ignore[union-attr]
    found: tuple[str, int] | None = None
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        try:
            path = Path(filename).resolve()
        except (OSError, ValueError):
            path = None
        if path is not None and any(path.is_relative_to(root) for root in roots):
            found = (filename, tb.tb_lineno)
        tb = tb.tb_next
    return found
