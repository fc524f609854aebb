"""The management REST API under /api/0/: one module per area, declared through
dashboards.api.routing (auth, RBAC, tenancy, validation, OpenAPI)."""
