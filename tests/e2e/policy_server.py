"""The MCP server of the policy rounds on the MCP Python SDK (`mcp` 2.3.0: MCPServer over its
Streamable HTTP app, which serves revision 2026-07-28 and the 2025 revisions), the same tools as
policy_server.mjs: `read_notes` (base scope; its `topic` mirrored into `Mcp-Param-Topic`, which
the SDK checks at 2026-07-28) and `admin_reset` (mcp:admin), each answering with the
X-Auth-Scopes the edge passed on. It trusts the edge (--strip-authorization) and checks
nothing; the SDK's DNS-rebinding guard is off because the edge, not a browser, is its caller.

Side door, never through the edge: GET /_seen, one entry per request that reached /mcp (as
policy_server.mjs). Prints `MCP_READY port=PORT sdk=py` once it listens; exits on SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
from typing import Annotated, Any

import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import Field

NOTES = "the notes: nothing secret here"
seen: list[dict[str, Any]] = []

server = MCPServer(name="e2e-policy-py", version="1.0.0", log_level="WARNING")


def scopes_of(ctx: Context) -> str | None:
    request = getattr(ctx.request_context, "request", None)
    headers = getattr(request, "headers", None)
    return headers.get("x-auth-scopes") if headers is not None else None


def answer(text: str, scopes: str | None) -> dict[str, Any]:
    return {"text": text, "scopes": scopes}


@server.tool(description="Reads the shared notes (base scope)")
async def read_notes(
    topic: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Topic"})], ctx: Context
) -> dict[str, Any]:
    return answer(f"{NOTES} on {topic}", scopes_of(ctx))


@server.tool(description="Resets the notes (needs mcp:admin)")
async def admin_reset(ctx: Context) -> dict[str, Any]:
    return answer("reset done", scopes_of(ctx))


def operations(body: bytes) -> list[dict[str, Any]]:
    try:
        parsed = json.loads(body)
    except ValueError:
        return []
    items = parsed if isinstance(parsed, list) else [parsed]
    return [
        {
            "method": m.get("method") if isinstance(m, dict) else None,
            "name": (m.get("params") or {}).get("name") if isinstance(m, dict) else None,
        }
        for m in items
    ]


app = server.streamable_http_app(
    transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
)


async def logged(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The SDK's app behind a recorder: each /mcp request's body is read, logged and replayed."""
    if scope["type"] != "http":
        return await app(scope, receive, send)
    if scope["path"] == "/_seen":
        body = json.dumps(seen).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        return await send({"type": "http.response.body", "body": body})
    if scope["path"] != "/mcp":
        return await app(scope, receive, send)
    messages = []
    body = b""
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    seen.append(
        {
            "http": scope["method"],
            "ops": operations(body),
            "version": headers.get("mcp-protocol-version"),
            "mcp_method": headers.get("mcp-method"),
            "mcp_name": headers.get("mcp-name"),
            "mcp_param_topic": headers.get("mcp-param-topic"),
            "scopes": headers.get("x-auth-scopes"),
        }
    )
    pending = iter(messages)

    async def replay() -> Any:
        try:
            return next(pending)
        except StopIteration:
            return await receive()

    await app(scope, replay, send)


async def main() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(logged, log_level="warning", lifespan="on", timeout_graceful_shutdown=2)
    srv = uvicorn.Server(config)
    loop = asyncio.get_running_loop()
    started = asyncio.create_task(srv.serve(sockets=[sock]))
    while not srv.started:
        if started.done():
            started.result()
            return
        await asyncio.sleep(0.05)
    print(f"MCP_READY port={port} sdk=py", flush=True)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: setattr(srv, "should_exit", True))
    await started


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
