"""The MCP Python SDK's client through the edge's gate to a real MCP server (mcp_server.mjs).

  a. no credentials: `streamable_http_client` + `ClientSession.initialize()` fails, and the
     edge's 401 with its challenge is what came back (the SDK's own WWW-Authenticate helpers
     find resource_metadata and scope in it); nothing reaches the MCP server;
  b. `OAuthClientProvider` (authorization code + PKCE) on the transport's httpx2 client: the
     edge's real 401 starts the flow, which discovers through the edge's PRM, registers at the
     provider and reaches the login step with an authorization URL (resource, S256) the provider
     accepts;
  c. a real access token (client_credentials, JWT for the resource) as an Authorization header on
     the httpx2 client: initialize, list_tools, call_tool through the edge, the logging and
     progress notifications of an SSE response arrive as they are sent, the MCP server verified
     the token;
  d. `ClientCredentialsOAuthProvider` with the high-level `Client` (its default `auto` mode): from
     the edge's 401 to a token and a tool call, all by the SDK.

Env (set by run.sh): EDGE_URL, RESOURCE_URL, ISSUER, SCOPES, MCP_URL, E2E_CLIENT_ID,
E2E_CLIENT_SECRET. Prints one line per check and `RESULT py_gate passed=N failed=M`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from importlib.metadata import version
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx2
from mcp import Client, ClientSession
from mcp.client.auth import OAuthClientProvider
from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from mcp.client.auth.utils import extract_field_from_www_auth, extract_resource_metadata_from_www_auth, extract_scope_from_www_auth
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


EDGE = env("EDGE_URL")
RESOURCE = env("RESOURCE_URL")
ISSUER = env("ISSUER")
SCOPES = env("SCOPES")
MCP = env("MCP_URL")
CLIENT_ID = env("E2E_CLIENT_ID")
CLIENT_SECRET = env("E2E_CLIENT_SECRET")
PRM_PATH = f"/.well-known/oauth-protected-resource{urlparse(RESOURCE).path}"
PRM_URL = f"{EDGE}{PRM_PATH}"
ISSUER_ORIGIN = f"{urlparse(ISSUER).scheme}://{urlparse(ISSUER).netloc}"
REDIRECT = "http://127.0.0.1:33418/callback"
TIMEOUT = httpx2.Timeout(10.0, read=30.0)
STEP = 20.0


c = Checks("py_gate")


def short(url: str) -> str:
    if url.startswith(EDGE):
        return url[len(EDGE) :]
    if url.startswith(ISSUER_ORIGIN):
        return "[AS]" + url[len(ISSUER_ORIGIN) :]
    return url


class Recorder:
    """httpx2 response hook: every exchange the SDK made, with the response (headers kept)."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str, int, httpx2.Response]] = []

    async def __call__(self, response: httpx2.Response) -> None:
        self.log.append((response.request.method, str(response.request.url), response.status_code, response))

    def trail(self) -> list[str]:
        return [f"{m} {short(u)} {s}" for m, u, s, _ in self.log]


async def seen() -> list[dict[str, Any]]:
    async with httpx2.AsyncClient(timeout=TIMEOUT) as plain:
        return (await plain.get(f"{MCP}/_seen")).json()


def root_causes(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for sub in error.exceptions for leaf in root_causes(sub)]
    return [error]


async def token_for_resource() -> str:
    async with httpx2.AsyncClient(timeout=TIMEOUT) as plain:
        meta = (await plain.get(f"{ISSUER}/.well-known/oauth-authorization-server")).json()
        r = await plain.post(
            meta["token_endpoint"],
            auth=(CLIENT_ID, CLIENT_SECRET),
            data={"grant_type": "client_credentials", "resource": RESOURCE, "scope": SCOPES},
        )
        body = r.json()
        if r.status_code != 200 or "access_token" not in body:
            raise RuntimeError(f"token endpoint answered {r.status_code}: {body}")
        return body["access_token"]


async def no_credentials() -> None:
    print("-- a. streamable_http_client + ClientSession.initialize() without credentials")
    before = len(await seen())
    rec = Recorder()
    error: BaseException | None = None
    try:
        async with httpx2.AsyncClient(timeout=TIMEOUT, event_hooks={"response": [rec]}) as http:
            async with streamable_http_client(RESOURCE, http_client=http) as (read, write):
                async with ClientSession(read, write) as session:
                    await asyncio.wait_for(session.initialize(), STEP)
    except BaseException as e:  # noqa: BLE001 - the failure is what is checked
        error = e
    print("   requests: " + ", ".join(rec.trail()))
    c.check("initialize fails", error is not None)
    if error is not None:
        print("   SDK says: " + "; ".join(f"{type(e).__name__}: {e}" for e in root_causes(error)))
    c.equal("the edge answered the initialize POST with 401", rec.trail()[:1], ["POST /mcp 401"])
    if rec.log and rec.log[0][2] == 401:
        response = rec.log[0][3]
        c.equal("extract_resource_metadata_from_www_auth", extract_resource_metadata_from_www_auth(response), PRM_URL)
        c.equal("extract_scope_from_www_auth", extract_scope_from_www_auth(response), SCOPES)
        c.equal("no error= for a missing token (RFC 6750 §3.1)", extract_field_from_www_auth(response, "error"), None)
    c.equal("nothing reached the MCP server", len(await seen()), before)


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


class StopAtCallback(Exception):
    """Raised where a person would log in: the flow has done all its discovery by then."""


async def person_flow() -> None:
    print("-- b. OAuthClientProvider (authorization code + PKCE) on the edge's real 401, up to the login step")
    seen_url: dict[str, str] = {}

    async def redirect_handler(url: str) -> None:
        seen_url["authorization_url"] = url

    async def callback_handler() -> AuthorizationCodeResult:
        raise StopAtCallback

    provider = OAuthClientProvider(
        server_url=RESOURCE,
        client_metadata=OAuthClientMetadata(
            client_name="mcp-auth-edge e2e gate (Python SDK)",
            redirect_uris=[AnyUrl(REDIRECT)],
            token_endpoint_auth_method="none",
        ),
        storage=MemoryStorage(),
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )
    rec = Recorder()
    error: BaseException | None = None
    try:
        async with httpx2.AsyncClient(timeout=TIMEOUT, auth=provider, event_hooks={"response": [rec]}) as http:
            async with streamable_http_client(RESOURCE, http_client=http) as (read, write):
                async with ClientSession(read, write) as session:
                    await asyncio.wait_for(session.initialize(), STEP)
    except BaseException as e:  # noqa: BLE001
        error = e
    trail = rec.trail()
    print("   requests: " + ", ".join(trail))
    causes = root_causes(error) if error else []
    c.check(
        "the flow stopped at the login step (StopAtCallback)",
        any(isinstance(e, StopAtCallback) for e in causes),
        f"ended with {error!r}" if error else "initialize succeeded without a login",
    )
    c.equal("first: the initialize POST, 401 from the edge", trail[:1], ["POST /mcp 401"])
    c.equal("then: the PRM at the URL the challenge named", trail[1:2], [f"GET {PRM_PATH} 200"])
    c.check(
        "then: the provider's metadata at the issuer the PRM names",
        any(t.startswith("GET [AS]/.well-known/") and t.endswith(" 200") for t in trail[2:]),
        ", ".join(trail),
    )
    c.check(
        "then: dynamic registration at the provider",
        provider.context.client_info is not None and any(t.startswith("POST [AS]") and t.endswith(" 201") for t in trail),
        ", ".join(trail),
    )
    c.equal("auth_server_url is the issuer from the PRM", provider.context.auth_server_url, ISSUER)
    url = seen_url.get("authorization_url", "")
    parsed = urlparse(url)
    query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
    meta = provider.context.oauth_metadata
    c.equal(
        "authorization URL is the provider's authorization_endpoint",
        f"{parsed.scheme}://{parsed.netloc}{parsed.path}",
        str(meta.authorization_endpoint) if meta else None,
    )
    c.equal("authorization URL: resource = the edge's resource", query.get("resource"), RESOURCE)
    # The Python SDK adds offline_access when the provider lists it (as py_client.py pins too).
    c.equal(
        "authorization URL: scope starts with the challenge's scope",
        query.get("scope", "").split()[: len(SCOPES.split())],
        SCOPES.split(),
    )
    c.equal("authorization URL: code_challenge_method S256", query.get("code_challenge_method"), "S256")
    if url:
        async with httpx2.AsyncClient(timeout=TIMEOUT) as plain:
            r = await plain.get(url)
        location = r.headers.get("location", "")
        c.check(
            "oidc-provider accepts the authorization request (redirects to its login interaction)",
            r.status_code == 303 and "/interaction/" in location,
            f"status {r.status_code}, location {location}",
        )


async def with_token() -> None:
    print("-- c. streamable_http_client + ClientSession with a real access token (client_credentials JWT)")
    token = await token_for_resource()
    c.check("the token is a JWT", token.count(".") == 2)
    before = len(await seen())
    rec = Recorder()
    notes: list[tuple[float, str | None, Any]] = []
    progress: list[tuple[float, float]] = []

    async def on_log(params: Any) -> None:
        notes.append((time.monotonic(), params.logger, params.data))

    async def on_progress(p: float, total: float | None, message: str | None) -> None:
        progress.append((time.monotonic(), p))

    headers = {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(timeout=TIMEOUT, headers=headers, event_hooks={"response": [rec]}) as http:
        async with streamable_http_client(RESOURCE, http_client=http) as (read, write):
            async with ClientSession(read, write, logging_callback=on_log) as session:
                init = await asyncio.wait_for(session.initialize(), STEP)
                c.equal("initialize: the MCP server answered", init.server_info.name, "e2e-upstream")
                tools = await asyncio.wait_for(session.list_tools(), STEP)
                c.equal("list_tools: the MCP server's tools", sorted(t.name for t in tools.tools), ["broadcast", "countdown", "whoami"])
                who = await asyncio.wait_for(session.call_tool("whoami", {}), STEP)
                report = who.structured_content or {}
                c.equal("whoami: the MCP server verified the token", report.get("token_verified"), True)
                c.equal("whoami: the token it saw is the one sent", report.get("token_prefix"), token[:12])
                c.equal("whoami: aud is the edge's resource", report.get("aud"), RESOURCE)
                c.equal("whoami: X-Forwarded-Host is the edge's host", report.get("x_forwarded_host"), urlparse(EDGE).netloc)
                c.check("whoami: the MCP server saw a session id", bool(report.get("session_id")))
                steps, gap = 3, 400
                start = time.monotonic()
                result = await asyncio.wait_for(
                    session.call_tool("countdown", {"steps": steps, "gap_ms": gap}, progress_callback=on_progress), STEP
                )
                done = time.monotonic()
                c.check("countdown: result arrived", result.content[0].text.startswith("done after 3 steps"), repr(result.content))
                posts = [r for m, _, _, r in rec.log if m == "POST"]
                c.check(
                    "countdown: answered as text/event-stream through the edge",
                    posts[-1].headers.get("content-type", "").startswith("text/event-stream"),
                    posts[-1].headers.get("content-type", ""),
                )
                counted = [n for n in notes if n[1] == "countdown"]
                c.equal("countdown: every logging notification arrived", len(counted), steps)
                c.equal("countdown: every progress notification arrived", [p for _, p in progress], [1, 2, 3])
                if counted:
                    lead = (done - counted[0][0]) * 1000
                    c.check(
                        f"countdown: the first notification arrived as sent, {lead:.0f} ms before the result (streamed)",
                        lead >= gap * (steps - 1),
                        f"first after {(counted[0][0] - start) * 1000:.0f} ms, result after {(done - start) * 1000:.0f} ms",
                    )
    upstream = (await seen())[before:]
    print("   the MCP server saw: " + ", ".join(f"{e['method']} {e['path']} {e['token']}" for e in upstream))
    c.check("the MCP server saw the token on every request", bool(upstream) and all(e["token"] == "valid" for e in upstream))
    c.check(
        "the session ended with a DELETE through the edge (terminate_on_close)",
        any(e["method"] == "DELETE" for e in upstream) and any(m == "DELETE" and s == 200 for m, _, s, _ in rec.log),
        ", ".join(rec.trail()),
    )


async def client_credentials() -> None:
    print("-- d. Client (mode auto) with ClientCredentialsOAuthProvider, from the edge's 401 to a tool call")
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
            who = await asyncio.wait_for(client.call_tool("whoami", {}), STEP)
            report = who.structured_content or {}
            c.equal("whoami: the MCP server verified the SDK-obtained token", report.get("token_verified"), True)
            c.equal("whoami: its audience is the edge's resource (the SDK sent resource=)", report.get("aud"), RESOURCE)
            c.equal("whoami: client_id", report.get("client_id"), CLIENT_ID)
    trail = rec.trail()
    print("   requests: " + ", ".join(trail))
    c.equal("first: 401 from the edge", trail[:1], ["POST /mcp 401"])
    c.equal("then: the PRM the challenge named", trail[1:2], [f"GET {PRM_PATH} 200"])
    c.check("then: a token from the provider", any(t.startswith("POST [AS]") and t.endswith(" 200") for t in trail), ", ".join(trail))
    c.check("then: MCP requests through the edge succeed", any(t == "POST /mcp 200" for t in trail), ", ".join(trail))


async def main() -> int:
    # The person flow logs the stop at the callback as an error with a traceback; expected here.
    logging.getLogger("mcp.client.auth").setLevel(logging.CRITICAL)
    print(f"py_gate: mcp {version('mcp')}, httpx2 {version('httpx2')}, through {RESOURCE}")
    for name, step in (
        ("a. no credentials", no_credentials),
        ("b. person flow", person_flow),
        ("c. with a token", with_token),
        ("d. client credentials", client_credentials),
    ):
        try:
            await asyncio.wait_for(step(), 60)
        except BaseException as e:  # noqa: BLE001 - one part failing must not hide the others
            if isinstance(e, KeyboardInterrupt):
                raise
            c.failure(name, e)
    return c.finish()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
