// The introspect round after run.sh has stopped the provider: an edge that cannot ask about a
// token must not let it through, and must not call it invalid either (the client should keep it
// and retry): 503 with Retry-After. A verdict the edge already holds still counts until its cache
// time runs out. Tokens come from edge_tokens.mjs through E2E_STATE.
//
// Env (set by run.sh): EDGE_URL, REPLICA_URL, ISSUER, MCP_URL, E2E_STATE.

import { readFileSync } from 'node:fs';

import { LATEST_PROTOCOL_VERSION } from '@modelcontextprotocol/sdk/types.js';

import { Checks, env } from './checks.mjs';

const EDGE = env('EDGE_URL');
const REPLICA = env('REPLICA_URL');
const ISSUER = env('ISSUER');
const MCP = env('MCP_URL');
const ORIGIN = 'https://app.example';
const c = new Checks('as_down');
const state = JSON.parse(readFileSync(env('E2E_STATE'), 'utf8'));
const seen = async () => (await fetch(`${MCP}/_seen`, { signal: AbortSignal.timeout(5000) })).json();

async function initialize(base, bearer) {
  const before = (await seen()).length;
  const r = await fetch(`${base}/mcp`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${bearer}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      origin: ORIGIN,
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: LATEST_PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 'e2e-as-down', version: '1.0.0' } },
    }),
    signal: AbortSignal.timeout(15000),
  });
  const body = await r.text();
  return { status: r.status, headers: r.headers, body, forwarded: (await seen()).length - before };
}

function unavailable(title, got) {
  let body;
  try {
    body = JSON.parse(got.body);
  } catch {}
  c.check(`${title}: 503 temporarily_unavailable with Retry-After`,
    got.status === 503 && body?.error === 'temporarily_unavailable' && /^\d+$/.test(got.headers.get('retry-after') ?? ''),
    `got ${got.status} retry-after=${got.headers.get('retry-after')} ${got.body}`);
  c.equal(`${title}: no WWW-Authenticate (the token is not known to be bad)`, got.headers.get('www-authenticate'), null);
  c.equal(`${title}: nothing reached the MCP server`, got.forwarded, 0);
  return got;
}

const down = await fetch(`${ISSUER}/.well-known/openid-configuration`, { signal: AbortSignal.timeout(2000) }).then((r) => r.status, () => 'refused');
c.equal('the provider is down', down, 'refused');

if (state.fresh) {
  const got = unavailable('edge: a token it has not seen', await initialize(EDGE, state.fresh));
  // The gate's 401 and 403 carry CORS headers for the browser; so should this.
  c.check('edge: a browser may read that 503 (Access-Control-Allow-Origin)', ['*', ORIGIN].includes(got.headers.get('access-control-allow-origin')),
    `access-control-allow-origin: ${got.headers.get('access-control-allow-origin')}`);
}
unavailable('edge: a made-up token', await initialize(EDGE, 'not-a-token-the-provider-issued-0123456789'));
if (state.seenByReplica) {
  unavailable('replica (--introspection-cache 0): a token it accepted before', await initialize(REPLICA, state.seenByReplica));
}
if (state.cachedAtEdge) {
  const got = await initialize(EDGE, state.cachedAtEdge);
  c.check('edge (--introspection-cache 60): a token it accepted less than a minute ago still passes', got.status === 200 && got.forwarded === 1,
    `got ${got.status} ${got.body.slice(0, 200)}`);
}

c.finish();
