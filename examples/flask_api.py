"""A small Flask "reports" API that trusts tokens issued by `jotkit serve`.

Same idea as orders_api.py, with the Flask extension and decorator:

    JOTKIT_RS_ISSUER=http://127.0.0.1:8000 python examples/flask_api.py
    curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8002/reports
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from flask import Flask

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _config import ResourceServerConfig

from jotkit.integrations.flask import JotkitAuth, current_claims, require_token


def create_app(config: ResourceServerConfig) -> Flask:
    """Build the reports API for one auth service."""
    app = Flask("reports")
    verifier = config.verifier()
    JotkitAuth(app, verifier)

    @app.get("/health")
    def health() -> Any:
        status = verifier.revocation_status()
        return {"status": "ok", "revocations_synced": status.synced if status else None}

    @app.get("/reports")
    @require_token(roles=["user"])
    def reports() -> Any:
        return {
            "service": "reports",
            "sub": current_claims["sub"],
            "email": current_claims.get("email"),
            "reports": [],
        }

    @app.get("/admin/reports")
    @require_token(roles=["admin"])
    def admin_reports() -> Any:
        return {"service": "reports", "admin": current_claims["sub"]}

    return app


def main() -> None:
    """Serve with Werkzeug's threaded server on JOTKIT_RS_HOST:JOTKIT_RS_PORT (default 8002)."""
    from werkzeug.serving import run_simple

    config = ResourceServerConfig.from_env(default_port=8002)
    run_simple(config.host, config.port, create_app(config), threaded=True)


if __name__ == "__main__":
    main()
