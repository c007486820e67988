"""Operations: Prometheus metrics (``metrics``) and liveness/readiness checks (``health``).

The HTTP side is ``segbridge.api.routes.health`` (/metrics, /healthz, /readyz); a worker
process serves the same routes on a port of its own with ``health.serve_worker_health``.
"""
