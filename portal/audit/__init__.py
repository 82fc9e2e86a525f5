"""One audit log for every write to every model, core or plugin."""
