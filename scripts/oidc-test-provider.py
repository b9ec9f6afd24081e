"""A real OpenID provider for Conclave's end-to-end single sign-on tests.

PyPI's oidc-provider-mock (pinned: 0.3.4) runs the authorization code flow
with real RS256 ID tokens and lets a test sign a user in by posting
`sub=NAME` to the authorization endpoint, without a browser. This wrapper
makes it stricter, like a production provider:

- PKCE is required (S256): a token request without the right verifier is
  refused with invalid_grant;
- ID tokens name their key (`kid`), and the JWKS says `alg` and `use`;
- POST /test/rotate-key makes a new signing key; the old public key stays
  in the JWKS.

Usage: python oidc-test-provider.py
It binds 127.0.0.1 on a free port first, then prints `port=N` on one line,
so the test knows where it listens without polling. Stop it by its PID.
"""
import os
import socket
import sys

os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"  # plain http, on loopback only

import authlib.integrations.flask_oauth2 as flask_oauth2  # noqa: E402
import flask  # noqa: E402
import uvicorn  # noqa: E402
from authlib import jose  # noqa: E402
from authlib.oauth2.rfc7636 import CodeChallenge  # noqa: E402
from oidc_provider_mock import _app  # noqa: E402

challenges = {}  # authorization code -> (challenge, method)
retired_keys = []  # earlier signing keys, still published


class RequiredCodeChallenge(CodeChallenge):
    """PKCE for every code, looked up from what the authorize step saw."""

    def get_authorization_code_challenge(self, authorization_code):
        return challenges.get(authorization_code.code, (None, None))[0]

    def get_authorization_code_challenge_method(self, authorization_code):
        return challenges.get(authorization_code.code, (None, None))[1]


save_code = _app.AuthorizationCodeGrant.save_authorization_code


def save_code_with_challenge(self, code, request):
    data = request.payload.data
    if data.get("code_challenge"):
        challenges[code] = (data["code_challenge"], data.get("code_challenge_method") or "plain")
    return save_code(self, code, request)


_app.AuthorizationCodeGrant.save_authorization_code = save_code_with_challenge

register_grant = flask_oauth2.AuthorizationServer.register_grant


def register_grant_with_pkce(self, grant_class, extensions=None):
    if grant_class is _app.AuthorizationCodeGrant:
        extensions = list(extensions or []) + [RequiredCodeChallenge(required=True)]
    return register_grant(self, grant_class, extensions)


flask_oauth2.AuthorizationServer.register_grant = register_grant_with_pkce

jwt_config = _app.OpenIDCode.get_jwt_config


def jwt_config_with_kid(self, grant, client=None):
    config = jwt_config(self, grant, client)
    config["kid"] = _app.storage.jwk.as_dict()["kid"]
    return config


_app.OpenIDCode.get_jwt_config = jwt_config_with_kid

app = _app.app()


def jwks():
    keys = [_app.storage.jwk.as_dict()] + [key.as_dict() for key in retired_keys]
    for key in keys:
        key.setdefault("alg", "RS256")
        key.setdefault("use", "sig")
    return flask.jsonify({"keys": keys})


app.view_functions["oidc-provider-mock.jwks"] = jwks


@app.post("/test/rotate-key")
def rotate_key():
    storage = flask.g.oidc_provider_mock_storage
    retired_keys.insert(0, jose.RSAKey.import_key(storage.jwk.as_dict(is_private=False)))
    storage.jwk = jose.RSAKey.generate_key(is_private=True)
    return flask.jsonify({"kid": storage.jwk.as_dict()["kid"]})


if __name__ == "__main__":
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    print(f"port={listener.getsockname()[1]}", flush=True)
    uvicorn.run(app, interface="wsgi", fd=listener.fileno(), log_level="warning")
