"""Form of the prospect import (P3.1.2): one file, CSV or Excel."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired


class ImportUploadForm(FlaskForm):
    """Upload a file of prospects (``/sales/imports/``)."""

    file = FileField(
        _l("File of prospects"),
        validators=[FileRequired(message=_l("Choose a CSV or Excel (.xlsx) file."))],
        description=_l(
            "CSV (UTF-8 or GBK, as Excel and WPS save it) or .xlsx; the first row names "
            "the columns."
        ),
        render_kw={"accept": ".csv,.xlsx,text/csv"},
    )
