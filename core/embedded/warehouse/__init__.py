"""The embedded warehouse: one process owns chDB and speaks ClickHouse's HTTP interface.

Every other PulseTrace process (and dbt) reaches it with the same clickhouse-connect HTTP
client it would use against a real ClickHouse server. Run it with
`python -m core.embedded.warehouse --data-dir D --port P`, or call
`core.embedded.warehouse.server.serve(...)` (arguments: `build_arg_parser()`).

Modules, in the order a request meets them: httpserver (HTTP/1.1, one thread per connection),
server (the WSGI app, `serve`, the CLI arguments), protocol (parameters, credentials, body,
query assembly), sql (statement scanning), sessions (session_id and the connection pool),
engine (chDB and its connections), errors (ClickHouse-style errors). core.embedded.
warehouse_service runs it as a child process for `pulsetrace up`, tests and benchmarks.
"""

from core.embedded.warehouse.server import build_arg_parser, serve

__all__ = ["build_arg_parser", "serve"]
