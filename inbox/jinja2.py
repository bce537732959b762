"""The Jinja2 environment of the inbox's hot fragments (``TEMPLATES``' second
entry, templates in ``templates/jinja2/``; autoescape on).

Django's template engine costs a microsecond or more per variable; the list's 50
rows are about 850 of them. Jinja2 compiles a template to Python once, so the same
markup over the same prepared values (``inbox.display``) renders at the speed the
hand-built strings had (docs/performance.md). Only those fragments use it: the
pages stay Django templates, which include the rendered fragment (a ``Markup``,
which Django does not escape again).
"""

from django.template import engines
from jinja2 import Environment, StrictUndefined
from markupsafe import Markup


def environment(**options) -> Environment:
    # Escaping is not optional here, whatever TEMPLATES says.
    options["autoescape"] = True
    # A missing value is a mistake in the prepared data, not an empty string.
    options["undefined"] = StrictUndefined
    options.setdefault("trim_blocks", True)
    options.setdefault("lstrip_blocks", True)
    return Environment(**options)  # noqa: S701 (autoescape is set just above)


def _env() -> Environment:
    return engines["jinja2"].env


def render_fragment(name: str, **context) -> Markup:
    """The template ``name`` rendered with ``context``, as markup to include."""
    return Markup(_env().get_template(name).render(context))  # noqa: S704 (autoescaped)


def fragment_macro(name: str, template: str = "inbox/macros.html"):
    """A macro of ``template``, callable from Python (it returns ``Markup``)."""
    return getattr(_env().get_template(template).module, name)
