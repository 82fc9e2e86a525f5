# Copy to instance/config.py and adjust. Values here override portal/config.py.

# PostgreSQL instead of the embedded SQLite database:
# DATABASE_URL = "postgresql://salesloop@127.0.0.1:5432/salesloop"

# Only these plugins (by entry-point name); leave unset to enable every installed one.
# PORTAL_PLUGINS = ["organisation"]

# Behind TLS:
# SESSION_COOKIE_SECURE = True
# REMEMBER_COOKIE_SECURE = True

# Values for declared settings, before an admin changes them in Admin > Settings:
# PORTAL_SETTINGS = {"core.company_name": "ACME Trading"}
