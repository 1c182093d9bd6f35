"""`nmt serve`: a translation server over HTTP (aiohttp). The JSON of requests and answers
(`protocol`), the routes and the page's files (`app`, `static/`), dynamic batching of concurrent
requests (`batcher`), the model thread's work (`model`), Prometheus counters (`metrics`), the
process's lifecycle (`server`), and the load generator of `nmt bench serve` and the tests
(`load`).

May import `nmt.translation` and everything below it: `nmt.storage`, `nmt.search`,
`nmt.evaluation`, `nmt.data`, `nmt.config`, `nmt.files`, `nmt.system`, `nmt.errors`, `vocab`.
"""
