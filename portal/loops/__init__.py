"""The closed loop (P1.3.2) as core mechanism: loop items, approvals, notifications
and the scheduler that sweeps them. Chapter plugins declare loop types, approval kinds,
notification kinds and jobs through hooks and call the services here; the words of a
chapter (complaint, expense claim ...) stay in its plugin."""
