"""Forms of the approval pages, shared with the API (``portal.api.validated``) so a
browser and a script get the same per-field messages."""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from .approvals import MAX_COMMENT

APPROVER_ACTIONS = [
    ("approve", _l("Approve")),
    ("reject", _l("Reject")),
    ("return", _l("Return for changes")),
]
REQUESTER_ACTIONS = [("resubmit", _l("Send again")), ("cancel", _l("Cancel the request"))]


class ActionForm(FlaskForm):
    """An approver's decision on the step waiting for them. The comment is required for
    reject and return; the service says so per field."""

    action = SelectField(
        _l("Decision"), validators=[DataRequired()], description=_l("approve, reject or return")
    )
    # Choices are set on the bound field: WTForms 3.3 warns about tuples passed to the class.
    action_choices = APPROVER_ACTIONS
    comment = TextAreaField(
        _l("Comment"),
        validators=[Optional(), Length(max=MAX_COMMENT)],
        description=_l("Required when you reject or return the request"),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.action.choices = list(self.action_choices)


class ApiActionForm(ActionForm):
    """The API's one action endpoint also serves the requester's actions."""

    action = SelectField(
        _l("Action"),
        validators=[DataRequired()],
        description=_l("approve, reject, return (approvers); resubmit, cancel (the requester)"),
    )
    action_choices = APPROVER_ACTIONS + REQUESTER_ACTIONS


class RequesterForm(FlaskForm):
    """The requester's own actions: send a returned request again, or withdraw it."""

    action = SelectField(_l("Action"), validators=[DataRequired()])

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.action.choices = list(REQUESTER_ACTIONS)


class DelegationForm(FlaskForm):
    """Who acts on my approvals while I am away, and when."""

    delegate_id = SelectField(
        _l("Delegate"), coerce=int, validators=[DataRequired(message=_l("Choose a person."))]
    )
    starts_on = DateField(_l("First day away"), validators=[DataRequired()])
    ends_on = DateField(_l("Last day away"), validators=[DataRequired()])
    reason = StringField(_l("Reason"), validators=[Optional(), Length(max=200)])


class EndDelegationForm(FlaskForm):
    """Ending a delegation early: the CSRF token is all it carries."""
