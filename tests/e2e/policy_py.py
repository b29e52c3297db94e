"""The MCP Python SDK's client (`mcp` 2.3.0, the high-level `Client` in its default `auto` mode:
revision 2026-07-28 where the server speaks it) against the MCP policy, as policy_ts.mjs does for
the TypeScript SDKs. Tokens come from the SDK's own ClientCredentialsOAuthProvider, asking for
the base scope mcp:tools.

  a. the "forbidden" edge: connect (the edge's 401, the PRM, a token), tools/list, read_notes;
     admin_reset gets the edge's 403 insufficient_scope naming mcp:admin, the SDK asks the
     provider for a token with the challenge's scope and retries by itself (what the README
     records for it); the MCP server never saw admin_reset with the base scope.
  b. the "tool_error" edge: admin_reset comes back as a tool result with isError true naming
     mcp:admin (HTTP 200), and the client carries on.
  c. a person (OAuthClientProvider, authorization code with PKCE, as the provider's
     pre-registered public client; its callback handler plays the browser at the provider's
     login and consent): signed in with the base scope the 401 names, then admin_reset: the SDK
     sends the person back to the provider for the challenge's scope and retries, all inside the
     one call.

Env (set by run.sh): RESOURCE_URL, TOOL_ERROR_RESOURCE, ISSUER, MCP_URL, E2E_CLIENT_ID,
E2E_CLIENT_SECRET, POLICY_SERVER, POLICY_LISTS_FILTERED. Prints one line per check and
`RESULT policy_py passed=N failed=M`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
from urllib.parse import parse_qs
from importlib.metadata import version
from typing import Any
from urllib.parse import urlparse

import httpx2
from mcp import Client
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


RESOURCE = env("RESOURCE_URL")
TOOL_ERROR_RESOURCE = env("TOOL_ERROR_RESOURCE")
ISSUER = env("ISSUER")
MCP = env("MCP_URL")
CLIENT_ID = env("E2E_CLIENT_ID")
CLIENT_SECRET = env("E2E_CLIENT_SECRET")
SERVER = env("POLICY_SERVER")
LISTS_FILTERED = os.environ.get("POLICY_LISTS_FILTERED") == "1"
BASE = "mcp:tools"
# read_notes' argument, mirrored into Mcp-Param-Topic at 2026-07-28 (not ASCII: sent encoded).
TOPIC = "plans \u2713"
# Servers that speak 2026-07-28; the SDK falls back to 2025-11-25 with the others.
WANT_VERSION = "2025-11-25" if SERVER == "ts1" else "2026-07-28"
# What the README's table records: the Python SDK steps up by itself on the edge's 403.
STEPS_UP_BY_ITSELF = True
TIMEOUT = httpx2.Timeout(10.0, read=30.0)
STEP = 20.0
ISSUER_ORIGIN = f"{urlparse(ISSUER).scheme}://{urlparse(ISSUER).netloc}"

c = Checks("policy_py")


def short(url: str) -> str:
    if url.startswith(ISSUER_ORIGIN):
        return "[AS]" + urlparse(url).path
    return f"{urlparse(url).port}{urlparse(url).path}"


class Recorder:
    """httpx2 response hook: every exchange the SDK made, with the step-up challenge if any."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.challenges: list[str] = []

    async def __call__(self, response: httpx2.Response) -> None:
        self.log.append(f"{response.request.method} {short(str(response.request.url))} {response.status_code}")
        if response.status_code == 403:
            self.challenges.append(response.headers.get("www-authenticate", ""))


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


async def seen() -> list[dict[str, Any]]:
    async with httpx2.AsyncClient(timeout=TIMEOUT) as http:
        return (await http.get(f"{MCP}/_seen")).json()


def admin_calls(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in entries if any(o["method"] == "tools/call" and o["name"] == "admin_reset" for o in e["ops"])]


def text_of(result: Any) -> str:
    return " ".join(getattr(p, "text", "") for p in (result.content if result is not None else []))


def scopes_of(result: Any) -> str:
    return ((result.structured_content or {}).get("scopes") or "") if result is not None else ""


def provider_for(resource: str, storage: MemoryStorage) -> ClientCredentialsOAuthProvider:
    return ClientCredentialsOAuthProvider(
        server_url=resource,
        storage=storage,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        scope=BASE,
        issuer=ISSUER,
    )


async def forbidden() -> None:
    print("-- a. the forbidden edge: base scope, then admin_reset and the step-up")
    before = len(await seen())
    storage = MemoryStorage()
    rec = Recorder()
    async with httpx2.AsyncClient(
        timeout=TIMEOUT, auth=provider_for(RESOURCE, storage), event_hooks={"response": [rec]}
    ) as http:
        async with Client(streamable_http_client(RESOURCE, http_client=http)) as client:
            c.equal(f"protocol revision {WANT_VERSION}", client.protocol_version, WANT_VERSION)
            c.equal("the SDK asked for the base scope only", storage.tokens.scope if storage.tokens else None, BASE)
            tools = await asyncio.wait_for(client.list_tools(), STEP)
            names = sorted(t.name for t in tools.tools)
            if LISTS_FILTERED:
                c.equal("tools/list: only read_notes for the base scope", names, ["read_notes"])
            else:
                c.check("tools/list: read_notes listed", "read_notes" in names, repr(names))
            read = await asyncio.wait_for(client.call_tool("read_notes", {"topic": TOPIC}), STEP)
            c.check(
                "read_notes answers, with the base token",
                f"the notes: nothing secret here on {TOPIC}" in text_of(read) and scopes_of(read) == BASE,
                text_of(read),
            )
            if WANT_VERSION == "2026-07-28":
                sent = [
                    e
                    for e in (await seen())[before:]
                    if any(o["method"] == "tools/call" and o["name"] == "read_notes" for o in e["ops"])
                ]
                c.check(
                    "at 2026-07-28 its Mcp-Param-Topic crossed the edge (encoded), and the server took it",
                    len(sent) == 1
                    and re.fullmatch(r"=\?base64\?[A-Za-z0-9+/=]+\?=", sent[0]["mcp_param_topic"] or "") is not None
                    and sent[0]["mcp_name"] == "read_notes",
                    repr(sent),
                )
            start = len(rec.log)
            admin = None
            failure: BaseException | None = None
            try:
                admin = await asyncio.wait_for(client.call_tool("admin_reset", {}), STEP)
            except Exception as e:  # noqa: BLE001 - recorded as the SDK's behaviour
                failure = e
            trail = rec.log[start:]
            print(f"   admin_reset: {', '.join(trail)}" + (f" -> {type(failure).__name__}: {failure}" if failure else ""))
            challenge = rec.challenges[0] if rec.challenges else ""
            print(f"   challenge: {challenge}")
            c.check("admin_reset with the base token: 403 from the edge", trail[:1] == [f"POST {short(RESOURCE)} 403"], ", ".join(trail))
            c.check(
                "the challenge: error=\"insufficient_scope\", scope naming mcp:admin (and the held mcp:tools), resource_metadata",
                re.fullmatch(r'Bearer error="insufficient_scope", scope="mcp:admin mcp:tools", resource_metadata="[^"]+"', challenge)
                is not None,
                challenge,
            )
            stepped = failure is None and "mcp:admin" in scopes_of(admin).split()
            c.equal(
                "the SDK steps up by itself (a token with the challenge's scope, the call retried)",
                stepped,
                STEPS_UP_BY_ITSELF,
            )
            if stepped:
                c.check(
                    "it asked the provider for a new token, then retried",
                    "POST [AS]/token 200" in trail and trail[-1] == f"POST {short(RESOURCE)} 200",
                    ", ".join(trail),
                )
                c.check(
                    "admin_reset answers, with a token holding mcp:admin and mcp:tools",
                    "reset done" in text_of(admin) and BASE in scopes_of(admin).split(),
                    text_of(admin),
                )
    reached = admin_calls((await seen())[before:])
    c.check(
        "admin_reset reached the MCP server only with mcp:admin",
        len(reached) >= 1 and all("mcp:admin" in (e["scopes"] or "").split() for e in reached),
        repr(reached),
    )
    if WANT_VERSION == "2026-07-28":
        modern = [e for e in reached if e["version"] == "2026-07-28"]
        c.check(
            "at 2026-07-28 the call carried Mcp-Method: tools/call and Mcp-Name: admin_reset through the edge",
            len(modern) >= 1 and all(e["mcp_method"] == "tools/call" and e["mcp_name"] == "admin_reset" for e in modern),
            repr(reached),
        )


async def tool_error() -> None:
    print("-- b. the tool_error edge: the denied call is a tool result with isError")
    before = len(await seen())
    rec = Recorder()
    async with httpx2.AsyncClient(
        timeout=TIMEOUT, auth=provider_for(TOOL_ERROR_RESOURCE, MemoryStorage()), event_hooks={"response": [rec]}
    ) as http:
        async with Client(streamable_http_client(TOOL_ERROR_RESOURCE, http_client=http)) as client:
            start = len(rec.log)
            denied = await asyncio.wait_for(client.call_tool("admin_reset", {}), STEP)
            trail = rec.log[start:]
            print(f"   admin_reset: {', '.join(trail)}: isError={denied.is_error} {text_of(denied)}")
            c.check(
                "isError true, naming the missing scope mcp:admin",
                denied.is_error is True and "mcp:admin" in text_of(denied),
                repr(denied),
            )
            # The initialized notification's 202 and the GET stream may land in between.
            c.check(
                "HTTP 200 and no new token asked for",
                f"POST {short(TOOL_ERROR_RESOURCE)} 200" in trail
                and not any("[AS]" in t or t.endswith((" 401", " 403")) for t in trail),
                ", ".join(trail),
            )
            read = await asyncio.wait_for(client.call_tool("read_notes", {"topic": TOPIC}), STEP)
            c.check("the client carries on: read_notes answers", "the notes" in text_of(read), text_of(read))
    c.equal("admin_reset never reached the MCP server", len(admin_calls((await seen())[before:])), 0)


async def login_at_provider(authorization_url: str, login: str) -> str:
    """oidc-provider's development login and consent, as a browser submits them; returns the
    redirect back to the client (not requested)."""
    origin = ISSUER_ORIGIN
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
            url = str(httpx2.URL(url).join(r.headers["location"]))
            if not url.startswith(origin):
                return url
    raise RuntimeError("no redirect back to the client after 12 steps")


async def person() -> None:
    print("-- c. a person (authorization code): base scope, then admin_reset and a new authorization")
    redirect = "http://127.0.0.1:33418/callback"
    asked: list[str] = []
    pending: dict[str, str] = {}

    async def redirect_handler(url: str) -> None:
        pending["url"] = url
        asked.append(parse_qs(urlparse(url).query).get("scope", [""])[0])

    async def callback_handler() -> AuthorizationCodeResult:
        back = await login_at_provider(pending.pop("url"), "dave@e2e.example")
        query = {k: v[0] for k, v in parse_qs(urlparse(back).query).items()}
        if "code" not in query:
            raise RuntimeError(f"the provider sent the browser back without a code: {query}")
        return AuthorizationCodeResult(code=query["code"], state=query.get("state"), iss=query.get("iss"))

    storage = MemoryStorage()
    # oidc.mjs's pre-registered public client: registered dynamically, the client would be held
    # to the first challenge's scope by oidc-provider (see policy_ts.mjs).
    storage.client = OAuthClientInformationFull(
        client_id="e2e-public",
        redirect_uris=[AnyUrl(redirect)],
        token_endpoint_auth_method="none",
        issuer=ISSUER,
    )
    provider = OAuthClientProvider(
        server_url=RESOURCE,
        client_metadata=OAuthClientMetadata(
            client_name="mcp-auth-edge e2e policy_py",
            redirect_uris=[AnyUrl(redirect)],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )
    rec = Recorder()
    async with httpx2.AsyncClient(timeout=TIMEOUT, auth=provider, event_hooks={"response": [rec]}) as http:
        async with Client(streamable_http_client(RESOURCE, http_client=http)) as client:
            c.check(
                "the first authorization asked for the base scope (the 401's)",
                len(asked) == 1 and BASE in asked[0].split() and "mcp:admin" not in asked[0].split(),
                repr(asked),
            )
            read = await asyncio.wait_for(client.call_tool("read_notes", {"topic": TOPIC}), STEP)
            c.check("read_notes answers, with the base scope", "the notes" in text_of(read), text_of(read))
            start = len(rec.log)
            admin = await asyncio.wait_for(client.call_tool("admin_reset", {}), STEP)
            print(f"   admin_reset: {', '.join(rec.log[start:])}")
            print(f"   asked for: {asked[1:]}")
            c.check(
                "the SDK starts a new authorization for the challenge's scope by itself",
                len(asked) == 2 and {"mcp:admin", BASE} <= set(asked[1].split()),
                repr(asked),
            )
            c.check(
                "admin_reset answers within the one call, with mcp:admin and mcp:tools",
                "reset done" in text_of(admin) and {"mcp:admin", BASE} <= set(scopes_of(admin).split()),
                text_of(admin),
            )


async def main() -> int:
    logging.getLogger("mcp.client.auth").setLevel(logging.CRITICAL)
    print(f"policy_py: mcp {version('mcp')}, Client (auto), MCP server {SERVER}")
    for name, step in (("a. forbidden", forbidden), ("b. tool_error", tool_error), ("c. person", person)):
        try:
            await asyncio.wait_for(step(), 60)
        except BaseException as e:  # noqa: BLE001 - one part failing must not hide the other
            if isinstance(e, KeyboardInterrupt):
                raise
            c.failure(name, e)
    return c.finish()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
