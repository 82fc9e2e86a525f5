"""Form of a market note (P3.1.1). The JSON API validates bodies with the same class
(``portal.api.validated``), so a page and a script get the same per-field messages."""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from portal.loops.service import local_today

from .market import MAX_BODY, TEXT_FIELDS, area_codes
from .models import MARKET_NOTE_KINDS
from .vocabulary import choices


def _not_in_the_future(form: Any, field: Any) -> None:
    if field.data is not None and field.data > local_today():
        raise ValidationError(_l("The date cannot be in the future."))


class MarketNoteForm(FlaskForm):
    """Record or change a market note (``/sales/market/new``, ``POST /market-notes``)."""

    kind = SelectField(_l("Kind"), validators=[DataRequired()])
    title = StringField(
        _l("Title"),
        validators=[
            DataRequired(message=_l("Give the note a title.")),
            Length(max=TEXT_FIELDS["title"]),
        ],
    )
    industry = SelectField(_l("Industry"), validators=[Optional()])
    region = SelectField(_l("Region"), validators=[Optional()])
    competitor = StringField(
        _l("Competitor"),
        validators=[Optional(), Length(max=TEXT_FIELDS["competitor"])],
        description=_l("The company the note is about, if it is about a competitor."),
    )
    observed_on = DateField(
        _l("Observed on"),
        validators=[DataRequired(message=_l("Say when this was observed.")), _not_in_the_future],
    )
    body = TextAreaField(
        _l("What was learned"),
        validators=[Optional(), Length(max=MAX_BODY)],
        description=_l("Source, figures, what it means for us."),
        render_kw={"rows": 6},
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kind.choices = choices("market_note_kind", MARKET_NOTE_KINDS)
        for name, codes in area_codes().items():
            field = getattr(self, name)
            offered = [("", str(_l("(not given)"))), *choices(name, list(codes))]
            # A note filed under a code an admin has since removed keeps it when edited.
            current = field.data or (getattr(kwargs.get("obj"), name, "") or "")
            if current and current not in codes:
                offered.append((current, current))
            field.choices = offered
        # Competitors already named are offered while typing (a datalist on the page).
        self.competitor.render_kw = {"list": "hint-competitor", "autocomplete": "off"}

    def values(self) -> dict[str, Any]:
        """The fields as the service takes them."""
        return {
            name: getattr(self, name).data
            for name in ("kind", "title", "industry", "region", "competitor", "observed_on", "body")
        }
