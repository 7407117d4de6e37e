"""The OAuth 2.1 / OpenID Connect provider of ``jotkit serve`` (issue 11).

* :mod:`.clients`: registered clients, their secrets and client authentication (RFC 6749
  §2.3, RFC 7523);
* :mod:`.codes`: authorization codes (RFC 6749 §4.1, RFC 7636);
* :mod:`.grants`: the token endpoint's grants (authorization_code, refresh_token,
  client_credentials);
* :mod:`.tokens`: RFC 9068 access tokens and OpenID Connect ID tokens;
* :mod:`.discovery`: OpenID Connect Discovery 1.0 and RFC 8414 metadata;
* :mod:`.routes`: ``/oauth/token``, ``/oauth/userinfo`` and the metadata documents.
"""
