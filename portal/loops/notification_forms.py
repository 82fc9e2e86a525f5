"""The email preferences form: one checkbox per declared notification kind."""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import SelectMultipleField
from wtforms.widgets import CheckboxInput, ListWidget


class NotificationPreferencesForm(FlaskForm):
    """The kinds ticked here also reach the person by email. Choices are the declared
    kinds, so a made-up kind in a crafted request is refused per field (422)."""

    email = SelectMultipleField(
        _l("Also send me an email"),
        choices=[],
        widget=ListWidget(prefix_label=False),
        option_widget=CheckboxInput(),
    )

    def __init__(self, kinds: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.email.choices = [(name, str(kind.label)) for name, kind in kinds.items()]
