"""The OAuth 2.1 / OpenID Connect provider of ``jotkit serve`` (docs/oauth.md)."""
