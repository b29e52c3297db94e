// The tokens an edge that checks tokens itself must refuse, and what it passes on for those it
// accepts, with plain `fetch` (an MCP initialize POST at /mcp) against two edges for the same
// resource: "edge" (EDGE_URL: --required-scope mcp:tools --strip-authorization) and "replica"
// (REPLICA_URL: jwt mode with the defaults; introspect mode with --introspection-cache 0).
//
// jwt mode (the provider signs the resource's tokens with ES256; its JWKS also holds an RSA key):
//   a tampered signature, `alg: none`, garbage, a token for another resource (RS256, its signature
//   good): 401 invalid_token with the reason, nothing forwarded; a token without mcp:tools: 403
//   insufficient_scope at "edge", forwarded by "replica"; what the MCP server receives from each.
// introspect mode (opaque tokens): the same, plus the introspection answers themselves (printed),
//   a JWT-shaped token, and revocation: "replica" (cache 0) refuses a revoked token at once,
//   "edge" (cache 60) keeps its verdict for the documented while. It leaves tokens in E2E_STATE
//   for as_down.mjs.
//
// Env (set by run.sh): TOKEN_CHECK, EDGE_URL, REPLICA_URL, RESOURCE_URL, OTHER_RESOURCE, ISSUER,
// SCOPES, MCP_URL, E2E_CLIENT_ID, E2E_CLIENT_SECRET, E2E_EDGE_CLIENT_ID, E2E_EDGE_CLIENT_SECRET,
// E2E_STATE.

import { writeFileSync } from 'node:fs';

import { extractWWWAuthenticateParams } from '@modelcontextprotocol/sdk/client/auth.js';
import { LATEST_PROTOCOL_VERSION } from '@modelcontextprotocol/sdk/types.js';

import { Checks, clientCredentialsToken, env } from './checks.mjs';

const MODE = env('TOKEN_CHECK');
const EDGE = env('EDGE_URL');
const REPLICA = env('REPLICA_URL');
const RESOURCE = env('RESOURCE_URL');
const OTHER = env('OTHER_RESOURCE');
const ISSUER = env('ISSUER');
const SCOPES = env('SCOPES');
const MCP = env('MCP_URL');
const CLIENT_ID = env('E2E_CLIENT_ID');
const CLIENT_SECRET = env('E2E_CLIENT_SECRET');
const PRM_URL = `${EDGE}/.well-known/oauth-protected-resource${new URL(RESOURCE).pathname}`;
const c = new Checks('edge_tokens');
console.log(`edge_tokens: --token-check ${MODE}, edge ${EDGE}, replica ${REPLICA}`);

const meta = await fetch(`${ISSUER}/.well-known/oauth-authorization-server`, { signal: AbortSignal.timeout(5000) }).then((r) => r.json());
const basic = (id, secret) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
const token = async (scope = SCOPES, resource = RESOURCE) =>
  (await clientCredentialsToken({ issuer: ISSUER, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, resource, scope })).access_token;
const seen = async () => (await fetch(`${MCP}/_seen`, { signal: AbortSignal.timeout(5000) })).json();
const b64json = (part) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));

/** An MCP initialize POST to `base`/mcp with `bearer`; what came back and what the MCP server saw. */
async function initialize(base, bearer, headers = {}) {
  const before = (await seen()).length;
  const r = await fetch(`${base}/mcp`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${bearer}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      ...headers,
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: LATEST_PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 'e2e-edge-tokens', version: '1.0.0' } },
    }),
    signal: AbortSignal.timeout(10000),
  });
  const body = await r.text();
  const www = r.headers.get('www-authenticate') ?? '';
  const upstream = (await seen()).slice(before);
  return {
    status: r.status,
    www,
    params: extractWWWAuthenticateParams(r),
    description: /error_description="([^"]*)"/.exec(www)?.[1],
    body,
    headers: r.headers,
    upstream,
  };
}

/** Checks a refusal: the status, the challenge's error (and description), nothing forwarded. */
function refused(title, got, status, error, description) {
  c.check(`${title}: ${status} ${error}${description ? ` "${description}"` : ''}`,
    got.status === status && got.params.error === error && (description === undefined || got.description === description),
    `got ${got.status}, WWW-Authenticate: ${got.www}, body ${got.body}`);
  c.check(`${title}: the challenge still names the resource metadata`, got.params.resourceMetadataUrl?.href === PRM_URL, got.www);
  let body;
  try {
    body = JSON.parse(got.body);
  } catch {}
  c.equal(`${title}: the JSON body says the same`, body?.error, error);
  c.equal(`${title}: nothing reached the MCP server`, got.upstream.length, 0);
}

/** Introspects `t` as the edge would (RFC 7662), for the record. */
async function introspect(t) {
  const r = await fetch(meta.introspection_endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(env('E2E_EDGE_CLIENT_ID'), env('E2E_EDGE_CLIENT_SECRET')) },
    body: new URLSearchParams({ token: t, token_type_hint: 'access_token' }),
    signal: AbortSignal.timeout(5000),
  });
  return { status: r.status, body: await r.text() };
}

// 1. A good token passes both edges; what the MCP server receives from each.
console.log('-- a good token, and what each edge passes on');
const good = await c.step('a client_credentials token for the resource', () => token());
if (good) {
  if (MODE === 'jwt') {
    const header = b64json(good.split('.')[0]);
    const jwks = await fetch(meta.jwks_uri, { signal: AbortSignal.timeout(5000) }).then((r) => r.json());
    console.log(`   token header ${JSON.stringify(header)}; the provider's JWKS: ${jwks.keys.map((k) => `${k.kty}/${k.alg}/${k.kid}`).join(', ')}`);
    c.equal('the resource\'s tokens are ES256 JWTs', header.alg, 'ES256');
    c.check('the JWKS holds an RSA and an EC key', ['RSA', 'EC'].every((kty) => jwks.keys.some((k) => k.kty === kty)), JSON.stringify(jwks.keys.map((k) => k.kty)));
  } else {
    const answer = await introspect(good);
    console.log(`   the provider's introspection answer for it: ${answer.body}`);
    let doc = {};
    try {
      doc = JSON.parse(answer.body);
    } catch {}
    c.check('the token is opaque', !good.includes('.'), good);
    c.check('the provider introspects it: active, aud = the resource, iss, exp', answer.status === 200 && doc.active === true &&
      doc.aud === RESOURCE && doc.iss === ISSUER && Number.isInteger(doc.exp), answer.body);
  }
  const forged = { 'x-auth-subject': 'mallory', 'x-auth-scopes': 'admin' };
  const viaEdge = await initialize(EDGE, good, forged);
  c.equal('edge: 200 from the MCP server', viaEdge.status, 200);
  const h = viaEdge.upstream[0]?.headers ?? {};
  c.check('edge: the MCP server got no Authorization (--strip-authorization)', viaEdge.upstream.length === 1 && !('authorization' in h), JSON.stringify(h));
  c.equal('edge: X-Auth-Scopes is the token\'s, not the client\'s', h['x-auth-scopes'], SCOPES);
  c.equal(`edge: X-Auth-Subject is the token's, not the client's (${MODE === 'jwt' ? 'the client id' : 'none: no sub in the answer'})`,
    h['x-auth-subject'], MODE === 'jwt' ? CLIENT_ID : undefined);
  const viaReplica = await initialize(REPLICA, good, forged);
  const hr = viaReplica.upstream[0]?.headers ?? {};
  c.equal('replica: 200 from the MCP server', viaReplica.status, 200);
  c.equal('replica: the MCP server got the token as sent', hr.authorization, `Bearer ${good.slice(0, 12)}…`);
  c.check('replica: the client\'s X-Auth-Subject / X-Auth-Scopes were removed', !('x-auth-subject' in hr) && !('x-auth-scopes' in hr), JSON.stringify(hr));
}

// 2. Tokens to refuse.
console.log('-- tokens the edges must refuse');
if (good) {
  // Flip one character in the middle of the signature (the last one may only carry padding bits).
  const dot = good.lastIndexOf('.');
  const at = MODE === 'jwt' ? dot + Math.floor((good.length - dot) / 2) : Math.floor(good.length / 2);
  const tampered = good.slice(0, at) + (good[at] === 'A' ? 'B' : 'A') + good.slice(at + 1);
  const why = MODE === 'jwt' ? 'token signature is invalid' : 'token is not active';
  refused(`a tampered ${MODE === 'jwt' ? 'signature' : 'token'} at the edge`, await initialize(EDGE, tampered), 401, 'invalid_token', why);
  refused('the same at the replica', await initialize(REPLICA, tampered), 401, 'invalid_token', why);
}
const garbage = 'not-a-token-the-provider-issued-0123456789';
refused('a made-up token', await initialize(EDGE, garbage), 401, 'invalid_token',
  MODE === 'jwt' ? 'malformed token: not three parts' : 'token is not active');
if (MODE === 'jwt') {
  // alg none, with claims that would otherwise pass.
  const now = Math.floor(Date.now() / 1000);
  const part = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const none = `${part({ alg: 'none', typ: 'at+jwt' })}.${part({ iss: ISSUER, aud: RESOURCE, sub: 'mallory', scope: SCOPES, iat: now, exp: now + 600 })}.`;
  const got = await initialize(EDGE, none);
  // RFC 6750 b64token: a trailing '.' is allowed, so this reaches the token check.
  refused('an unsigned token (alg none)', got, 401, 'invalid_token', 'token signing algorithm not accepted');
} else {
  // oidc-provider refuses to introspect anything shaped like a JWT: 400 unsupported_token_type,
  // not `active: false`. For the edge that is still a bad token (401), not an outage (503).
  const jwtShaped = `${Buffer.from('{"alg":"RS256","typ":"at+jwt"}').toString('base64url')}.${Buffer.from('{}').toString('base64url')}.c2lnbmF0dXJl`;
  const answer = await introspect(jwtShaped);
  console.log(`   the provider's introspection answer for a JWT-shaped token: ${answer.status} ${answer.body}`);
  const got = await initialize(EDGE, jwtShaped);
  c.check('a JWT-shaped token (the provider answers 400 unsupported_token_type): 401 invalid_token, not 503',
    got.status === 401 && got.params.error === 'invalid_token', `got ${got.status} ${got.www} ${got.body}`);
}
const other = await c.step(`a token for another resource (${OTHER})`, () => token(SCOPES, OTHER));
if (other) {
  if (MODE === 'jwt') {
    c.equal('it is an RS256 JWT (its signature checks out against the JWKS)', b64json(other.split('.')[0]).alg, 'RS256');
  } else {
    const answer = await introspect(other);
    console.log(`   the provider's introspection answer for it: ${answer.body}`);
    c.check('the provider says it is active, for the other audience', /"active":true/.test(answer.body) && answer.body.includes(`"aud":"${OTHER}"`), answer.body);
  }
  refused('a token for another resource', await initialize(EDGE, other), 401, 'invalid_token', 'token audience does not include this resource');
}

// 3. Scope.
console.log('-- a token without the required scope (mcp:tools)');
const narrow = await c.step('a token with mcp:resources only', () => token('mcp:resources'));
if (narrow) {
  const got = await initialize(EDGE, narrow);
  c.check('edge: 403 insufficient_scope', got.status === 403 && got.params.error === 'insufficient_scope', `got ${got.status} ${got.www} ${got.body}`);
  c.equal('edge: the challenge names the missing scope (RFC 6750 §3.1)', got.params.scope, 'mcp:tools');
  c.equal('edge: nothing reached the MCP server', got.upstream.length, 0);
  const viaReplica = await initialize(REPLICA, narrow);
  c.equal('replica (no --required-scope): forwarded, 200', viaReplica.status, 200);
}

// 4. Revocation (introspect mode).
if (MODE === 'introspect') {
  console.log('-- revocation');
  const count = async () => (await (await fetch(`${new URL(ISSUER).origin}/_e2e/stats`)).json()).introspections;
  const revoked = await c.step('a token to revoke', () => token());
  if (revoked) {
    // Start early in a wall-clock second, so that the steps below share one: a verdict kept "until
    // the end of this second" (cache times are whole Unix seconds) would show as a pass below.
    while (Date.now() % 1000 > 200) await new Promise((r) => setTimeout(r, 20));
    const n0 = await count();
    c.equal('edge: accepted', (await initialize(EDGE, revoked)).status, 200);
    c.equal('replica: accepted', (await initialize(REPLICA, revoked)).status, 200);
    const r = await fetch(meta.revocation_endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(CLIENT_ID, CLIENT_SECRET) },
      body: new URLSearchParams({ token: revoked, token_type_hint: 'access_token' }),
      signal: AbortSignal.timeout(5000),
    });
    await r.body?.cancel();
    c.equal('the provider revokes it (RFC 7009)', r.status, 200);
    const answer = await introspect(revoked);
    c.equal('the provider now answers active: false', answer.body, '{"active":false}');
    const n1 = await count();
    const at = Date.now();
    const right = await initialize(REPLICA, revoked);
    console.log(`   replica asked ${Date.now() - at} ms after the revocation (${Date.now() % 1000} ms into the second); introspections: ${n1 - n0} before, ${(await count()) - n1} for it`);
    refused('replica (--introspection-cache 0): the revoked token, at once', right, 401, 'invalid_token', 'token is not active');
    await new Promise((r) => setTimeout(r, 1100));
    refused('replica: the revoked token, a second later', await initialize(REPLICA, revoked), 401, 'invalid_token', 'token is not active');
    const cached = await initialize(EDGE, revoked);
    c.equal('edge (--introspection-cache 60): its verdict still holds, 200 (revocation is noticed within the cache time)', cached.status, 200);
  }
  // For as_down.mjs: tokens the edges have and have not seen.
  const fresh = await c.step('a token no edge has seen', () => token());
  const state = { fresh, cachedAtEdge: good, seenByReplica: good };
  writeFileSync(env('E2E_STATE'), JSON.stringify(state));
}

c.finish();
