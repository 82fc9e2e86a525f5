"""Default configuration; an installation overrides it in ``instance/config.py`` or
through ``PORTAL_*`` environment variables (``PORTAL_DATABASE_URL`` and so on)."""

from datetime import timedelta

# Plugins enabled in this installation, by entry-point name. None means "every installed
# plugin"; a list is an allow-list (names not installed are reported, not fatal).
PORTAL_PLUGINS: list[str] | None = None

SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
SQLALCHEMY_TRACK_MODIFICATIONS = False

# Sessions: a new session on login, strong protection, 12 h absolute lifetime.
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = False  # set True behind TLS (instance/config.py)
PERMANENT_SESSION_LIFETIME = timedelta(hours=12)
REMEMBER_COOKIE_HTTPONLY = True
REMEMBER_COOKIE_SAMESITE = "Lax"

WTF_CSRF_TIME_LIMIT = None  # the token lives as long as the session
MAX_CONTENT_LENGTH = 20 * 1024 * 1024

# Failed-login throttling (security mechanism, not policy): this many failures for one
# username or one address within the window lock further attempts until it passes.
LOGIN_MAX_FAILURES = 5
LOGIN_WINDOW_SECONDS = 15 * 60
PASSWORD_MIN_LENGTH = 8
# werkzeug's default (scrypt); tests use a cheaper method to keep the suite fast.
PASSWORD_HASH_METHOD = "scrypt"  # noqa: S105 - a method name, not a password

BABEL_DEFAULT_LOCALE = "en"
BABEL_DEFAULT_TIMEZONE = "Asia/Shanghai"
PORTAL_LOCALES = ["en", "zh_CN"]

PAGE_SIZE = 25
API_MAX_PAGE_SIZE = 200

# Rules: how often a worker checks for a newly published version (seconds), and whether
# it also picks up edited files in rules/ and instance/rules/.
RULES_REFRESH_SECONDS = 2
RULES_WATCH_FILES = True

# Behind a reverse proxy (the intranet's TLS terminator), how many proxies set
# X-Forwarded-For: the client address (audit log, login throttling) is then read from it.
# 0 trusts no header: without a proxy a client could otherwise pick its own address.
PROXY_HOPS = 0

# Email (notifications). Requests only queue rows; a background sender thread in the
# same process (woken after the request commits) and the job core.send_emails deliver
# them over one SMTP connection per batch. PORTAL_MAIL_SERVER=... and so on override.
MAIL_ENABLED = True  # False: nothing is queued or sent (the preferences page says so)
MAIL_SERVER = "localhost"
MAIL_PORT = 25
MAIL_USE_TLS = False  # STARTTLS after connecting (usually port 587)
MAIL_USE_SSL = False  # TLS from the first byte (usually port 465)
MAIL_USERNAME: str | None = None
MAIL_PASSWORD: str | None = None
MAIL_SENDER = "Salesloop <salesloop@localhost>"
MAIL_TIMEOUT = 10  # seconds for connecting and each SMTP command
MAIL_BATCH_SIZE = 100  # emails claimed and sent per SMTP connection
MAIL_MAX_ATTEMPTS = 8  # then the email is marked failed and left for an admin
MAIL_RETRY_SECONDS = 60  # wait before the first retry; doubles with every failed attempt
MAIL_RETRY_MAX_SECONDS = 6 * 3600
MAIL_CLAIM_SECONDS = 600  # a batch claimed longer ago than this (sender died) is retried
# The in-process sender thread: None means on, except in tests (TESTING), which call
# send_queued themselves or switch it on explicitly.
MAIL_BACKGROUND_SENDER: bool | None = None
# Absolute links in emails, e.g. "https://salesloop.intranet.example" (env PORTAL_BASE_URL).
PORTAL_BASE_URL = ""

# Scheduled jobs (portal/loops/scheduler.py). `portal run` starts one scheduler thread;
# with gunicorn run `portal jobs run-due` from cron (or `portal jobs worker`) instead.
SCHEDULER_EMBEDDED = True
SCHEDULER_INTERVAL_SECONDS = 30
# A claimed job is leased this long; a worker that died mid-run frees it after the lease.
SCHEDULER_LEASE_SECONDS = 3600

# Grown-up setup: jobs and email sending go onto this RQ (Redis) queue, worked by
# `rq worker salesloop --url ...` (env PORTAL_QUEUE_URL=redis://127.0.0.1:6379/0).
PORTAL_QUEUE_URL: str | None = None
QUEUE_NAME = "salesloop"
QUEUE_JOB_TIMEOUT = 3600  # seconds an RQ worker lets one job run
