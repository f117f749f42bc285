"""Nova club registration: the student's own registration, and the club admins' list and exports.

`views` is the JSON API (`student` for one's own registration, `nova_admin` for the list,
cancellations and exports); `services` does the work; `notify` sends the WeChat template
message in the background; `export` writes CSV and .xlsx.
"""

from flask import Blueprint

bp = Blueprint("nova", __name__, url_prefix="/api/nova")

from berater.nova import views  # noqa: E402,F401  (routes register on import)
