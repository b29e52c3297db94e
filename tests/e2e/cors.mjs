// A browser's view of the edge's discovery documents, with plain `fetch`: the CORS preflight a
// browser sends before the TypeScript SDK's discovery GET (which adds MCP-Protocol-Version, a
// non-safelisted header), then the GET itself. Node's fetch does not enforce CORS, so the
// checks read the headers a browser would enforce.
//
// Env (set by run.sh): EDGE_URL, RESOURCE_URL.

import { LATEST_PROTOCOL_VERSION } from '@modelcontextprotocol/sdk/types.js';

import { Checks, env } from './checks.mjs';

const EDGE = env('EDGE_URL');
const RESOURCE = env('RESOURCE_URL');
const ORIGIN = 'https://app.example';
const c = new Checks('cors');

const paths = [
  '/.well-known/oauth-authorization-server',
  '/.well-known/openid-configuration',
  `/.well-known/oauth-protected-resource${new URL(RESOURCE).pathname}`,
];

for (const path of paths) {
  console.log(`-- ${path}`);
  const pre = await fetch(`${EDGE}${path}`, {
    method: 'OPTIONS',
    headers: {
      Origin: ORIGIN,
      'Access-Control-Request-Method': 'GET',
      'Access-Control-Request-Headers': 'mcp-protocol-version',
    },
    signal: AbortSignal.timeout(5000),
  });
  await pre.body?.cancel();
  const h = (name) => pre.headers.get(name) ?? '';
  const list = (name) => h(name).split(',').map((s) => s.trim().toLowerCase());
  c.check('preflight status is 2xx', pre.status >= 200 && pre.status < 300, `status ${pre.status}`);
  c.check('preflight allows any origin', h('access-control-allow-origin') === '*' || h('access-control-allow-origin') === ORIGIN,
    `Access-Control-Allow-Origin: ${h('access-control-allow-origin')}`);
  c.check('preflight allows GET', list('access-control-allow-methods').includes('get'),
    `Access-Control-Allow-Methods: ${h('access-control-allow-methods')}`);
  c.check('preflight allows the mcp-protocol-version header',
    list('access-control-allow-headers').includes('mcp-protocol-version') || h('access-control-allow-headers') === '*',
    `Access-Control-Allow-Headers: ${h('access-control-allow-headers')}`);

  const get = await fetch(`${EDGE}${path}`, {
    headers: { Origin: ORIGIN, 'MCP-Protocol-Version': LATEST_PROTOCOL_VERSION, Accept: 'application/json' },
    signal: AbortSignal.timeout(5000),
  });
  const body = await get.text();
  c.check('GET status 200', get.status === 200, `status ${get.status}`);
  c.check('GET carries Access-Control-Allow-Origin: *', get.headers.get('access-control-allow-origin') === '*',
    `Access-Control-Allow-Origin: ${get.headers.get('access-control-allow-origin')}`);
  c.check('GET body is a JSON object', (() => {
    try {
      const v = JSON.parse(body);
      return typeof v === 'object' && v !== null && !Array.isArray(v);
    } catch {
      return false;
    }
  })());
}

c.finish();
