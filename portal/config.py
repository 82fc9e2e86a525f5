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
