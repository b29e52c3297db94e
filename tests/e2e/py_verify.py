"""The MCP Python SDK's client through an edge that checks tokens itself (TOKEN_CHECK = jwt or
introspect; the edge runs with `--required-scope mcp:tools --strip-authorization`) to the MCP
server, which trusts the edge:

  a. `ClientCredentialsOAuthProvider` with the high-level `Client` (default `auto` mode): from the
     edge's 401 through the PRM to a token and a tool call; the MCP server got X-Auth-Scopes (and
     X-Auth-Subject when the token names a subject) and no Authorization;
  b. `OAuthClientProvider` for a person: the edge's 401, the provider's login and consent (done
     here the way a browser would, in the callback handler), the code exchanged by the SDK, then a
     tool call as that person.

Env (set by run.sh): TOKEN_CHECK, EDGE_URL, RESOURCE_URL, ISSUER, SCOPES, E2E_CLIENT_ID,
E2E_CLIENT_SECRET. Prints one line per check and `RESULT py_verify passed=N failed=M`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
from importlib.metadata import version
from typing import Any
from urllib.parse import parse_qs, urljoin, urlparse

import httpx2
from mcp import Client, ClientSession
from mcp.client.auth import OAuthClientProvider
from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from pydantic import AnyUrl

from pychecks import Checks


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        print(f"{name} is not set (run.sh sets it)", file=sys.stderr)
        sys.exit(2)
    return value


MODE = env("TOKEN_CHECK")
EDGE = env("EDGE_URL")
RESOURCE = env("RESOURCE_URL")
ISSUER = env("ISSUER")
SCOPES = env("SCOPES")
CLIENT_ID = env("E2E_CLIENT_ID")
CLIENT_SECRET = env("E2E_CLIENT_SECRET")
PRM_PATH = f"/.well-known/oauth-protected-resource{urlparse(RESOURCE).path}"
ISSUER_ORIGIN = f"{urlparse(ISSUER).scheme}://{urlparse(ISSUER).netloc}"
REDIRECT = "http://127.0.0.1:33418/callback"
LOGIN = "bob@e2e.example"
TIMEOUT = httpx2.Timeout(10.0, read=30.0)
STEP = 20.0


c = Checks("py_verify")


def short(url: str) -> str:
    if url.startswith(EDGE):
        return url[len(EDGE) :]
    if url.startswith(ISSUER_ORIGIN):
        return "[AS]" + url[len(ISSUER_ORIGIN) :]
    return url


class Recorder:
    """httpx2 response hook: every exchange the SDK made."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str, int]] = []

    async def __call__(self, response: httpx2.Response) -> None:
        self.log.append((response.request.method, str(response.request.url), response.status_code))

    def trail(self) -> list[str]:
        return [f"{m} {short(u)} {s}" for m, u, s in self.log]


class MemoryStorage:
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


async def login_at_provider(authorization_url: str, login: str) -> str:
    """oidc-provider's development login and consent, as a browser submits them; returns the
    redirect back to the client (not requested)."""
    origin = f"{urlparse(authorization_url).scheme}://{urlparse(authorization_url).netloc}"
    async with httpx2.AsyncClient(timeout=TIMEOUT, follow_redirects=False) as browser:
        url = authorization_url
        for _ in range(12):
            r = await browser.get(url)
            if r.status_code == 200 and "/interaction/" in url:
                prompt = re.search(r'name="prompt" value="([a-z]+)"', r.text)
                if not prompt:
                    raise RuntimeError(f"interaction page without a prompt at {url}")
                form = {"prompt": prompt[1]}
                if prompt[1] == "login":
                    form |= {"login": login, "password": "any"}
                r = await browser.post(url, data=form)
            if not 300 <= r.status_code < 400:
                raise RuntimeError(f"{url} answered {r.status_code}: {r.text[:300]}")
            url = urljoin(url, r.headers["location"])
            if not url.startswith(origin):
                return url
    raise RuntimeError("no redirect back to the client after 12 steps")


async def client_credentials() -> None:
    print("-- a. Client (mode auto) with ClientCredentialsOAuthProvider, from the edge's 401 to a tool call")
    provider = ClientCredentialsOAuthProvider(
        server_url=RESOURCE,
        storage=MemoryStorage(),
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        scope=SCOPES,
        issuer=ISSUER,
    )
    rec = Recorder()
    async with httpx2.AsyncClient(timeout=TIMEOUT, auth=provider, event_hooks={"response": [rec]}) as http:
        async with Client(streamable_http_client(RESOURCE, http_client=http)) as client:
            tools = await asyncio.wait_for(client.list_tools(), STEP)
            c.equal("list_tools: the MCP server's tools", sorted(t.name for t in tools.tools), ["broadcast", "countdown", "whoami"])
            who = await asyncio.wait_for(client.call_tool("whoami", {}), STEP)
            report = who.structured_content or {}
            c.equal("whoami: no Authorization reached the MCP server (--strip-authorization)", report.get("authorization"), None)
            c.equal("whoami: X-Auth-Scopes is the token's scopes", report.get("x_auth_scopes"), SCOPES)
            c.equal(
                "whoami: X-Auth-Subject " + ("is the client id (the JWT's sub)" if MODE == "jwt" else "absent (no sub for client_credentials)"),
                report.get("x_auth_subject"),
                CLIENT_ID if MODE == "jwt" else None,
            )
    trail = rec.trail()
    print("   requests: " + ", ".join(trail))
    c.equal("first: 401 from the edge", trail[:1], ["POST /mcp 401"])
    c.equal("then: the PRM the challenge named", trail[1:2], [f"GET {PRM_PATH} 200"])
    c.check("then: a token from the provider", any(t.startswith("POST [AS]") and t.endswith(" 200") for t in trail), ", ".join(trail))
    c.check("then: MCP requests through the edge succeed", "POST /mcp 200" in trail, ", ".join(trail))


async def person() -> None:
    print("-- b. OAuthClientProvider for a person: login and consent at the provider, then a tool call")
    seen: dict[str, str] = {}

    async def redirect_handler(url: str) -> None:
        seen["authorization_url"] = url

    async def callback_handler() -> AuthorizationCodeResult:
        back = await login_at_provider(seen["authorization_url"], LOGIN)
        seen["callback"] = back
        query = {k: v[0] for k, v in parse_qs(urlparse(back).query).items()}
        return AuthorizationCodeResult(code=query["code"], state=query.get("state"), iss=query.get("iss"))

    storage = MemoryStorage()
    provider = OAuthClientProvider(
        server_url=RESOURCE,
        client_metadata=OAuthClientMetadata(
            client_name=f"mcp-auth-edge e2e {MODE} (Python SDK)",
            redirect_uris=[AnyUrl(REDIRECT)],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )
    rec = Recorder()
    async with httpx2.AsyncClient(timeout=TIMEOUT, auth=provider, event_hooks={"response": [rec]}) as http:
        async with streamable_http_client(RESOURCE, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await asyncio.wait_for(session.initialize(), STEP)
                who = await asyncio.wait_for(session.call_tool("whoami", {}), STEP)
                report = who.structured_content or {}
    trail = rec.trail()
    print("   requests: " + ", ".join(trail))
    c.equal("first: 401 from the edge", trail[:1], ["POST /mcp 401"])
    c.equal("the provider sent the browser back to the client", seen.get("callback", "").split("?")[0], REDIRECT)
    token = storage.tokens.access_token if storage.tokens else ""
    c.check(
        f"the SDK exchanged the code for an access token ({'a JWT' if MODE == 'jwt' else 'opaque'})",
        token.count(".") == 2 if MODE == "jwt" else bool(token) and "." not in token,
        token[:20],
    )
    c.equal("whoami: X-Auth-Subject is the person who logged in", report.get("x_auth_subject"), LOGIN)
    c.equal("whoami: X-Auth-Scopes is what they consented to", report.get("x_auth_scopes"), SCOPES)
    c.equal("whoami: no Authorization reached the MCP server", report.get("authorization"), None)


async def main() -> int:
    logging.getLogger("mcp.client.auth").setLevel(logging.CRITICAL)
    print(f"py_verify: mcp {version('mcp')}, httpx2 {version('httpx2')}, through {RESOURCE} (--token-check {MODE})")
    for name, step in (("a. client credentials", client_credentials), ("b. person", person)):
        try:
            await asyncio.wait_for(step(), 60)
        except BaseException as e:  # noqa: BLE001 - one part failing must not hide the other
            if isinstance(e, KeyboardInterrupt):
                raise
            c.failure(name, e)
    return c.finish()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
