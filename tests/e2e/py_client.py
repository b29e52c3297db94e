"""Discovery through mcp-auth-edge with the MCP Python SDK (`mcp` on PyPI).

Two levels:
1. The SDK's discovery helpers (`mcp.client.auth.utils`): its URL builders, its request
   factory, its response handlers and pydantic models, pointed at the edge and at the
   authorization server the edge names.
2. Its `OAuthClientProvider` flow, run by httpx2 as an MCP client runs it, from a 401 on the
   MCP endpoint up to the browser redirect: discovery through the edge, dynamic registration at
   the real provider, and the authorization URL, which the provider must accept. The edge's 401
   gate is not built yet, so that first 401 is made up by the test transport; every other
   request goes over the network to the edge or the provider.

Env (set by run.sh): EDGE_URL, RESOURCE_URL, ISSUER, SCOPES, RESOURCE_NAME, RESOURCE_DOC.
Prints one line per check and `RESULT py_client passed=N failed=M`; exits 1 on any failure.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from importlib.metadata import version
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx2
from mcp.client.auth import OAuthClientProvider, OAuthFlowError
from mcp.client.auth.oauth2 import _origin_issuer  # the legacy path's expected issuer, as the flow computes it
from mcp.client.auth.utils import (
    build_oauth_authorization_server_metadata_discovery_urls,
    build_protected_resource_metadata_discovery_urls,
    create_oauth_metadata_request,
    handle_auth_metadata_response,
    handle_protected_resource_response,
    validate_metadata_issuer,
)
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthMetadata,
    OAuthToken,
    ProtectedResourceMetadata,
)
from mcp.shared.auth_utils import check_resource_allowed, resource_url_from_server_url
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from mcp_types import LATEST_PROTOCOL_VERSION
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
SCOPES = env("SCOPES").split()
RESOURCE_NAME = env("RESOURCE_NAME")
RESOURCE_DOC = env("RESOURCE_DOC")
RESOURCE_PATH = urlparse(RESOURCE).path
REDIRECT = "http://127.0.0.1:33418/callback"
TIMEOUT = httpx2.Timeout(5.0)


def field_diff(a: dict[str, Any], b: dict[str, Any], la: str = "a", lb: str = "b") -> list[str]:
    return [f"{k}: {la}={a.get(k)!r} {lb}={b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def short(url: str) -> str:
    return url[len(EDGE) :] if url.startswith(EDGE) else url


c = Checks("py_client")


async def fetch_prm(client: httpx2.AsyncClient, urls: list[str]) -> tuple[ProtectedResourceMetadata | None, list[str]]:
    """Walks the SDK's PRM URL list the way its flow does: the first usable document wins."""
    tried = []
    for url in urls:
        response = await client.send(create_oauth_metadata_request(url))
        tried.append(f"{short(url)} {response.status_code}")
        prm = await handle_protected_resource_response(response)
        if prm is not None:
            return prm, tried
    return None, tried


async def fetch_asm(client: httpx2.AsyncClient, urls: list[str]) -> tuple[OAuthMetadata | None, list[str]]:
    """Walks the SDK's AS metadata URL list the way its flow does."""
    tried = []
    for url in urls:
        response = await client.send(create_oauth_metadata_request(url))
        tried.append(f"{short(url)} {response.status_code}")
        ok, asm = await handle_auth_metadata_response(response)
        if not ok:
            break
        if asm is not None:
            return asm, tried
    return None, tried


def prm_fields(prm: ProtectedResourceMetadata) -> None:
    c.equal("PRM resource is the configured resource", str(prm.resource), RESOURCE)
    c.equal("PRM authorization_servers names the oidc-provider issuer", [str(u) for u in prm.authorization_servers], [ISSUER])
    c.equal("PRM scopes_supported", prm.scopes_supported, SCOPES)
    c.equal("PRM bearer_methods_supported", prm.bearer_methods_supported, ["header"])
    c.equal("PRM resource_name", prm.resource_name, RESOURCE_NAME)
    c.equal("PRM resource_documentation", str(prm.resource_documentation), RESOURCE_DOC)


async def helpers(client: httpx2.AsyncClient) -> OAuthMetadata | None:
    # 1. Protected resource metadata, from the URLs the SDK builds for the MCP server URL.
    print(f"-- build_protected_resource_metadata_discovery_urls(None, {RESOURCE})")
    urls = build_protected_resource_metadata_discovery_urls(None, RESOURCE)
    c.equal(
        "PRM URLs: path-inserted, then root",
        urls,
        [f"{EDGE}/.well-known/oauth-protected-resource{RESOURCE_PATH}", f"{EDGE}/.well-known/oauth-protected-resource"],
    )
    prm, tried = await fetch_prm(client, urls)
    c.equal("PRM served at the first URL", tried, [f"/.well-known/oauth-protected-resource{RESOURCE_PATH} 200"])
    if prm is None:
        c.check("PRM parses as ProtectedResourceMetadata", False)
        return None
    prm_fields(prm)
    raw = json.loads((await client.get(urls[0])).content)
    c.equal(
        "every PRM field is one the SDK's model knows",
        sorted(set(raw) - set(ProtectedResourceMetadata.model_fields)),
        [],
    )
    # The root URL, the SDK's second choice, serves the same document.
    root, _ = await fetch_prm(client, urls[1:])
    c.equal("root PRM URL serves the same document", root, prm)

    # With the resource_metadata URL of a WWW-Authenticate challenge first in line.
    urls = build_protected_resource_metadata_discovery_urls(urls[0], RESOURCE)
    got, tried = await fetch_prm(client, urls)
    c.equal("PRM via a resource_metadata URL", (got, tried[:1]), (prm, [f"/.well-known/oauth-protected-resource{RESOURCE_PATH} 200"]))

    # A deeper server URL: path-inserted 404, then the root document, whose resource is a parent.
    deeper = f"{RESOURCE}/sub/path"
    got, tried = await fetch_prm(client, build_protected_resource_metadata_discovery_urls(None, deeper))
    c.equal(
        f"PRM for {deeper}: URLs tried",
        tried,
        [f"/.well-known/oauth-protected-resource{RESOURCE_PATH}/sub/path 404", "/.well-known/oauth-protected-resource 200"],
    )
    c.equal(f"PRM for {deeper}: same document", got, prm)
    c.check(
        f"check_resource_allowed({deeper}, PRM resource)",
        check_resource_allowed(resource_url_from_server_url(deeper), str(prm.resource)),
    )

    # 2. Authorization server metadata (a) at the issuer the PRM names.
    issuer = str(prm.authorization_servers[0])
    print(f"-- build_oauth_authorization_server_metadata_discovery_urls({issuer}, {RESOURCE})  [issuer from the PRM]")
    urls = build_oauth_authorization_server_metadata_discovery_urls(issuer, RESOURCE)
    origin, path = _origin_issuer(ISSUER), urlparse(ISSUER).path.rstrip("/")
    c.equal(
        "AS URLs at the issuer",
        urls,
        [
            f"{origin}/.well-known/oauth-authorization-server{path}",
            f"{origin}/.well-known/openid-configuration{path}",
            f"{origin}{path}/.well-known/openid-configuration",
        ]
        if path
        else [f"{ISSUER}/.well-known/oauth-authorization-server", f"{ISSUER}/.well-known/openid-configuration"],
    )
    direct, tried = await fetch_asm(client, urls)
    print(f"   tried: {', '.join(tried)}")
    if direct is None:
        c.check("(a) AS metadata parses as OAuthMetadata", False)
        return None
    try:
        validate_metadata_issuer(direct, issuer)
        c.check("(a) validate_metadata_issuer accepts the issuer's document", True)
    except OAuthFlowError as e:
        c.failure("(a) validate_metadata_issuer", e)

    # 3. (b) at the edge's origin: the SDK's legacy URL, and the OIDC one the edge also serves.
    print(f"-- build_oauth_authorization_server_metadata_discovery_urls(None, {RESOURCE})  [edge origin, legacy]")
    urls = build_oauth_authorization_server_metadata_discovery_urls(None, RESOURCE)
    c.equal("legacy AS URL is on the edge origin", urls, [f"{EDGE}/.well-known/oauth-authorization-server"])
    relayed, tried = await fetch_asm(client, urls)
    c.equal("(b) served by the edge", tried, ["/.well-known/oauth-authorization-server 200"])
    if relayed is not None:
        diff = field_diff(direct.model_dump(mode="json"), relayed.model_dump(mode="json"), "(a)", "(b)")
        c.check(f"(b) equals (a) field by field ({len(OAuthMetadata.model_fields)} model fields)", not diff, "\n".join(diff))
    if path:
        # With an issuer path the edge also serves the path-inserted forms; the SDK builds them
        # when handed the edge's origin plus the issuer's path.
        urls = build_oauth_authorization_server_metadata_discovery_urls(f"{EDGE}{path}", RESOURCE)
        inserted, tried = await fetch_asm(client, urls)
        c.equal("(c) edge serves the first path-inserted URL", tried, [f"/.well-known/oauth-authorization-server{path} 200"])
        c.equal("(c) equals (a)", inserted, direct)
        for url in urls[1:]:
            got, tried = await fetch_asm(client, [url])
            c.equal(f"edge {short(url)} equals (a)", (got, tried), (direct, [f"{short(url)} 200"]))
    oidc, _ = await fetch_asm(client, [f"{EDGE}/.well-known/openid-configuration"])
    c.equal("edge /.well-known/openid-configuration equals (a)", oidc, direct)
    a_raw = (await client.get(f"{ISSUER}/.well-known/oauth-authorization-server")).content
    b_raw = (await client.get(f"{EDGE}/.well-known/oauth-authorization-server")).content
    c.check("edge AS metadata is byte-for-byte the upstream document", a_raw == b_raw, f"{len(a_raw)} vs {len(b_raw)} bytes")

    # On its legacy path (no usable PRM) the SDK expects the resource origin as issuer (RFC 8414
    # §3.3, SEP-2468). The relayed document names the real issuer, so this client refuses it:
    # Python clients reach the authorization server only through the PRM, which the edge serves.
    if relayed is not None:
        expected = _origin_issuer(RESOURCE)
        try:
            validate_metadata_issuer(relayed, expected)
            refused = ""
        except OAuthFlowError as e:
            refused = str(e)
        c.check(
            f"legacy path: validate_metadata_issuer(relayed, {expected}) refuses the upstream issuer (known, by design)",
            bool(refused),
            "the SDK accepted a document whose issuer is not the edge origin: revisit the README's note",
        )
        if refused:
            print(f"   SDK says: {refused}")
    return direct


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


class EdgeWithChallenge(httpx2.AsyncBaseTransport):
    """Real network, except the MCP endpoint, which answers the 401 the gate will send."""

    def __init__(self, challenge: str) -> None:
        self.real = httpx2.AsyncHTTPTransport()
        self.challenge = challenge
        self.log: list[str] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if str(request.url) == RESOURCE:
            self.log.append(f"{request.method} {short(str(request.url))} 401 (made up)")
            return httpx2.Response(401, headers={"WWW-Authenticate": self.challenge}, json={"error": "invalid_token"})
        response = await self.real.handle_async_request(request)
        self.log.append(f"{request.method} {short(str(request.url))} {response.status_code}")
        return response

    async def aclose(self) -> None:
        await self.real.aclose()


async def flow(challenge: str, direct: OAuthMetadata | None) -> None:
    print(f"-- OAuthClientProvider flow after `401 WWW-Authenticate: {challenge}`")
    seen: dict[str, str] = {}

    async def redirect_handler(url: str) -> None:
        seen["authorization_url"] = url

    async def callback_handler() -> AuthorizationCodeResult:
        raise StopAtCallback

    provider = OAuthClientProvider(
        server_url=RESOURCE,
        client_metadata=OAuthClientMetadata(
            client_name="mcp-auth-edge e2e (Python SDK)",
            redirect_uris=[AnyUrl(REDIRECT)],
            token_endpoint_auth_method="none",
        ),
        storage=MemoryStorage(),
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )
    transport = EdgeWithChallenge(challenge)
    async with httpx2.AsyncClient(transport=transport, timeout=TIMEOUT) as client:
        try:
            await client.post(
                RESOURCE,
                auth=provider,
                headers={MCP_PROTOCOL_VERSION_HEADER: LATEST_PROTOCOL_VERSION, "Accept": "application/json, text/event-stream"},
                json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
            )
            c.check("flow stops at the login step", False, "the flow ended without asking a person to log in")
        except StopAtCallback:
            c.check("flow reaches the login step", True)
        except Exception as e:  # noqa: BLE001 - any other error is the finding
            c.failure("flow reaches the login step", e)
    print("   requests: " + ", ".join(transport.log))
    ctx = provider.context
    first_prm = f"GET /.well-known/oauth-protected-resource{RESOURCE_PATH} 200"
    c.equal("PRM discovered at the edge, first try", transport.log[1:2], [first_prm])
    c.equal("auth_server_url is the issuer from the PRM", ctx.auth_server_url, ISSUER)
    c.equal("AS metadata the flow holds equals (a)", ctx.oauth_metadata, direct)
    c.check("client registered at the provider", ctx.client_info is not None and bool(ctx.client_info.client_id))
    url = seen.get("authorization_url", "")
    parsed = urlparse(url)
    query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
    c.equal(
        "authorization URL is the provider's authorization_endpoint",
        f"{parsed.scheme}://{parsed.netloc}{parsed.path}",
        str(direct.authorization_endpoint) if direct else None,
    )
    c.equal("authorization URL resource = PRM resource", query.get("resource"), RESOURCE)
    c.equal("authorization URL scope starts with the PRM scopes", query.get("scope", "").split()[: len(SCOPES)], SCOPES)
    c.equal("authorization URL code_challenge_method", query.get("code_challenge_method"), "S256")
    if url:
        async with httpx2.AsyncClient(timeout=TIMEOUT) as plain:
            r = await plain.get(url)
        location = r.headers.get("location", "")
        c.check(
            "oidc-provider accepts the authorization request (redirects to its login interaction)",
            r.status_code == 303 and "/interaction/" in location,
            f"status {r.status_code}, location {location}",
        )


async def main() -> int:
    # The flow logs the stop at the callback as an error with a traceback; it is expected here.
    logging.getLogger("mcp.client.auth").setLevel(logging.CRITICAL)
    print(f"py_client: mcp {version('mcp')}, httpx2 {version('httpx2')}, protocol version {LATEST_PROTOCOL_VERSION}")
    direct = None
    try:
        async with httpx2.AsyncClient(timeout=TIMEOUT) as client:
            direct = await helpers(client)
    except Exception as e:  # noqa: BLE001
        c.failure("discovery helpers", e)
    prm_url = f"{EDGE}/.well-known/oauth-protected-resource{RESOURCE_PATH}"
    for challenge in (f'Bearer resource_metadata="{prm_url}"', "Bearer"):
        try:
            await flow(challenge, direct)
        except Exception as e:  # noqa: BLE001
            c.failure(f"flow after {challenge}", e)
    return c.finish()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
