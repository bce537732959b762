"""The Jinja2 environment of the inbox's hot fragments (``TEMPLATES``' second
entry, templates in ``templates/jinja2/``; autoescape on); why, in ``inbox.display``.
The pages stay Django templates, which include the rendered fragment (a ``Markup``,
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
