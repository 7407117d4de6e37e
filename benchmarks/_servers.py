"""What several benchmarks need beside the server under test: a static JWKS endpoint,
PostgreSQL database administration (create or drop a scratch database) and a server
process's CPU time."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

#: The PostgreSQL maintenance database the benchmarks create their scratch databases from.
PG_ADMIN = os.environ.get("JOTKIT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc), in seconds: it reports CPU
    per request, which unlike req/s hardly depends on what else the machine is doing."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def jwks_server(jwks: dict[str, Any]) -> tuple[ThreadingHTTPServer, str]:
    """Serve ``jwks`` (a JWK Set, RFC 7517 §5) on a free loopback port from a daemon thread;
    returns the server (``shutdown()`` it when done) and the JWKS URL."""
    body = json.dumps(jwks).encode()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/jwks.json"


def pg_dsn(database: str) -> str:
    """The DSN of ``database`` on the server :data:`PG_ADMIN` points at."""
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + database


def pg_admin(sql: str) -> None:
    """Run one administrative statement (CREATE/DROP DATABASE) on :data:`PG_ADMIN`."""
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(PG_ADMIN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())
