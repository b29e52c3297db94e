// DPoP (RFC 9449) end to end: openid-client (over oauth4webapi, both maintained DPoP clients)
// gets a DPoP-bound access token from oidc-provider with the client_credentials grant and drives
// the MCP TypeScript SDK's Client through edges running `--token-check jwt --dpop require`, its
// every request sent by the library's `fetchProtectedResource` with a fresh proof.
//
//   1. the token: token_type DPoP, a JWT whose cnf.jkt is the thumbprint of the client's key;
//      the edge's protected resource metadata says DPoP-bound tokens are required
//   2. "edge" (no nonces): initialize, tools/list and a tool call succeed; the MCP server got
//      `Authorization: DPoP <token>`, `X-Auth-Dpop-Jkt: <cnf.jkt>` and never a `DPoP` header
//   3. "edge" refuses, with nothing forwarded: a proof replayed as it was accepted, a proof for
//      another URI (htu), for another method (htm), made with another key than the token's, a
//      DPoP token without a proof (each 401 invalid_dpop_proof, each counted in the edge's
//      metrics), and the token sent as Bearer (401, the DPoP challenge only); and it accepts a
//      token bound to an Ed25519 key, whose proofs the library signs with RFC 9864's name for the
//      algorithm, "Ed25519"
//   4. "nonce-a" and "nonce-b" (one --dpop-nonce-key), reached through a load balancer made here
//      that alternates between them for the public resource URI: the first request gets 401
//      use_dpop_nonce with DPoP-Nonce, the library retries by itself with the nonce and the
//      other replica accepts it; the whole MCP session then runs on that nonce; a made-up nonce
//      gets use_dpop_nonce again; a replay at the same replica is refused, and (as the README
//      says, each replica has its own replay cache) a replay at the other replica is accepted
//      once, then refused there too; the session id (wrapped by the edges' --session-key, the
//      server's id inside in base64url) is accepted by both replicas, and the MCP server sees
//      its own id
//
// Env (set by run.sh): EDGE_URL, EDGE_ADMIN_URL (its metrics), RESOURCE_URL, NONCE_A_URL,
// NONCE_B_URL, ISSUER, SCOPES, MCP_URL, E2E_CLIENT_ID, E2E_CLIENT_SECRET.

import * as oidc from 'openid-client';
import { calculateJwkThumbprint, decodeJwt, decodeProtectedHeader } from 'jose';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { LATEST_PROTOCOL_VERSION } from '@modelcontextprotocol/sdk/types.js';

import { Checks, env } from './checks.mjs';

const EDGE = env('EDGE_URL');
const EDGE_ADMIN = env('EDGE_ADMIN_URL');
const RESOURCE = env('RESOURCE_URL');
const NONCE_A = env('NONCE_A_URL');
const NONCE_B = env('NONCE_B_URL');
const ISSUER = env('ISSUER');
const SCOPES = env('SCOPES');
const MCP = env('MCP_URL');
const c = new Checks('dpop_client');
const PRM_URL = `${EDGE}/.well-known/oauth-protected-resource${new URL(RESOURCE).pathname}`;

/** The edge's count of refused proofs (`mcp_auth_edge_token_rejections_total{reason="dpop_proof"}`). */
async function refusedProofs() {
  const text = await fetch(`${EDGE_ADMIN}/metrics`, { signal: AbortSignal.timeout(5000) }).then((r) => r.text());
  const m = /^mcp_auth_edge_token_rejections_total\{[^}]*reason="dpop_proof"[^}]*\} (\d+)$/m.exec(text);
  return m ? Number(m[1]) : NaN;
}
const seen = async () => (await fetch(`${MCP}/_seen`, { signal: AbortSignal.timeout(5000) })).json();
const proofOf = (headers) => headers.get('dpop');
const claimsOf = (proof) => (proof ? decodeJwt(proof) : undefined);
const initializeBody = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: LATEST_PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 'e2e-dpop', version: '1.0.0' } },
});
const mcpHeaders = () => new Headers({ 'content-type': 'application/json', accept: 'application/json, text/event-stream' });

// Every request the library sends to an edge, as sent and as answered; `route` (when set) is the
// load balancer: it sends a request for the public resource to another origin.
const log = [];
let route;
async function libraryFetch(url, options) {
  const target = new URL(url);
  const isEdge = target.origin === new URL(EDGE).origin;
  const sentTo = isEdge && route ? route() : target.origin;
  const entry = { url: String(url), sentTo, method: options.method, headers: new Headers(options.headers), body: options.body };
  const response = await fetch(isEdge ? `${sentTo}${target.pathname}${target.search}` : url, options);
  if (isEdge) {
    entry.status = response.status;
    entry.www = response.headers.get('www-authenticate') ?? '';
    entry.nonce = response.headers.get('dpop-nonce');
    entry.session = response.headers.get('mcp-session-id');
    log.push(entry);
  }
  return response;
}

/** What an edge answers a request sent as given, and what reached the MCP server meanwhile. */
async function send(base, headers, body = initializeBody, method = 'POST') {
  const before = (await seen()).length;
  const r = await fetch(`${base}${new URL(RESOURCE).pathname}`, { method, headers, body, signal: AbortSignal.timeout(10000) });
  const text = await r.text();
  const www = r.headers.get('www-authenticate') ?? '';
  return {
    status: r.status,
    www,
    error: /error="([^"]*)"/.exec(www)?.[1],
    description: /error_description="([^"]*)"/.exec(www)?.[1],
    nonce: r.headers.get('dpop-nonce'),
    body: text,
    forwarded: (await seen()).length - before,
  };
}

/** A refusal: its status, the challenge's error and description, nothing forwarded. */
function refused(title, got, error, description) {
  c.check(`${title}: 401 ${error} "${description}", nothing forwarded`,
    got.status === 401 && got.error === error && got.description === description && got.forwarded === 0 &&
      /^DPoP /.test(got.www) && !/Bearer/.test(got.www),
    `got ${got.status}, WWW-Authenticate: ${got.www}, forwarded ${got.forwarded}, body ${got.body}`);
}

/** What the library's own request through `handle` gets: the response, or the challenge it threw. */
async function viaLibrary(config, token, handle, url = RESOURCE) {
  try {
    const r = await oidc.fetchProtectedResource(config, token, new URL(url), 'POST', initializeBody, mcpHeaders(), { DPoP: handle });
    await r.text();
    return { status: r.status };
  } catch (e) {
    const challenge = e instanceof oidc.WWWAuthenticateChallengeError ? e.cause.find((ch) => ch.scheme === 'dpop') : undefined;
    return { status: e.response?.status ?? e.status, error: challenge?.parameters.error, description: challenge?.parameters.error_description, thrown: e };
  }
}

/** An MCP session over `config`: initialize, tools/list, whoami, close; whoami's report. */
async function mcpSession(config, token, handle, title) {
  const transport = new StreamableHTTPClientTransport(new URL(RESOURCE), {
    fetch: (url, init = {}) =>
      oidc.fetchProtectedResource(config, token, new URL(url), init.method ?? 'GET', init.body ?? null, new Headers(init.headers ?? {}), { DPoP: handle }),
  });
  const client = new Client({ name: 'e2e-dpop', version: '1.0.0' });
  try {
    await client.connect(transport);
    const tools = await client.listTools();
    c.check(`${title}: initialize and tools/list through the edge`, tools.tools.some((t) => t.name === 'whoami'), JSON.stringify(tools));
    const result = await client.callTool({ name: 'whoami', arguments: {} });
    c.check(`${title}: the whoami tool call succeeds`, !result.isError && result.structuredContent !== undefined, JSON.stringify(result));
    return result.structuredContent;
  } catch (e) {
    c.check(`${title}: an MCP session through the edge`, false, `threw ${e?.stack ?? e}`);
    return undefined;
  } finally {
    await client.close().catch(() => {});
  }
}

// --- 1. the token ---------------------------------------------------------------------------------
console.log(`dpop_client: edge ${EDGE}, nonce replicas ${NONCE_A} and ${NONCE_B}, public resource ${RESOURCE}`);
const config = await oidc.discovery(new URL(ISSUER), env('E2E_CLIENT_ID'), undefined, oidc.ClientSecretBasic(env('E2E_CLIENT_SECRET')), {
  execute: [oidc.allowInsecureRequests],
  timeout: 10,
});
config[oidc.customFetch] = libraryFetch;
const keys = await oidc.randomDPoPKeyPair('ES256');
const jkt = await calculateJwkThumbprint(await crypto.subtle.exportKey('jwk', keys.publicKey));
const dpop = oidc.getDPoPHandle(config, keys);
const prm = await fetch(PRM_URL, { signal: AbortSignal.timeout(5000) }).then((r) => r.json());
c.check('the edge\'s metadata: DPoP-bound tokens required, ES256 among the proof algorithms',
  prm.dpop_bound_access_tokens_required === true && prm.dpop_signing_alg_values_supported?.includes('ES256'), JSON.stringify(prm));
c.check('the provider takes DPoP proofs at its token endpoint (dpop_signing_alg_values_supported has ES256)',
  config.serverMetadata().dpop_signing_alg_values_supported?.includes('ES256'), JSON.stringify(config.serverMetadata().dpop_signing_alg_values_supported));
const grant = await c.step('a DPoP-bound token (client_credentials with a proof)', () =>
  oidc.clientCredentialsGrant(config, { resource: RESOURCE, scope: SCOPES }, { DPoP: dpop }));
const token = grant?.access_token;
if (token) {
  const claims = decodeJwt(token);
  c.equal('token_type is DPoP', grant.token_type.toLowerCase(), 'dpop');
  c.equal('the JWT access token is bound to the client\'s key: cnf.jkt = its RFC 7638 thumbprint', claims.cnf?.jkt, jkt);
  c.equal('the token is for the resource (aud)', claims.aud, RESOURCE);
}

if (token) {
  // --- 2. a whole MCP session through "edge" ------------------------------------------------------
  console.log('-- an MCP session through "edge" (--dpop require, no nonces)');
  const before = (await seen()).length;
  log.length = 0;
  const report = await mcpSession(config, token, dpop, 'edge');
  const forwarded = (await seen()).slice(before);
  c.check('every request of the session carried a fresh proof for the public URI, each with its own jti',
    log.length >= 3 && log.every((e) => claimsOf(proofOf(e.headers))?.htu === RESOURCE) &&
      new Set(log.map((e) => claimsOf(proofOf(e.headers))?.jti)).size === log.length,
    JSON.stringify(log.map((e) => [e.method, e.status, claimsOf(proofOf(e.headers))])));
  if (report) {
    c.equal('whoami: the MCP server got Authorization: DPoP <the token>', report.authorization, `DPoP ${token.slice(0, 14)}…`);
    c.equal('whoami: the MCP server got X-Auth-Dpop-Jkt = the token\'s cnf.jkt', report.x_auth_dpop_jkt, jkt);
    c.equal('whoami: the MCP server got no DPoP header', report.dpop, null);
  }
  c.check(`every forwarded request of the session (${forwarded.length}) had DPoP authorization, X-Auth-Dpop-Jkt and no DPoP header`,
    forwarded.length >= 3 && forwarded.every((e) => e.headers.authorization?.startsWith('DPoP ') &&
      e.headers['x-auth-dpop-jkt'] === jkt && !('dpop' in e.headers)),
    JSON.stringify(forwarded.map((e) => e.headers)));

  // --- 3. what "edge" refuses ---------------------------------------------------------------------
  console.log('-- proofs and tokens "edge" refuses');
  const proofsRefusedBefore = await refusedProofs();
  log.length = 0;
  const first = await viaLibrary(config, token, dpop);
  const accepted = log.at(-1);
  c.equal('a fresh proof from the library: 200', first.status, 200);
  if (accepted?.status === 200) {
    const again = await send(EDGE, accepted.headers, accepted.body);
    refused('the same request, proof and all, sent again', again, 'invalid_dpop_proof', 'DPoP proof has been used before');
  }
  const elsewhere = oidc.getDPoPHandle(config, keys, { [oidc.modifyAssertion]: (_h, p) => { p.htu = 'https://other-mcp.example/mcp'; } });
  const wrongUri = await viaLibrary(config, token, elsewhere);
  c.check('a proof for another URI (htu https://other-mcp.example/mcp): 401 invalid_dpop_proof',
    wrongUri.status === 401 && wrongUri.error === 'invalid_dpop_proof' && wrongUri.description === 'DPoP proof htu does not match the request URI',
    JSON.stringify({ ...wrongUri, thrown: String(wrongUri.thrown) }));
  const otherPath = oidc.getDPoPHandle(config, keys, { [oidc.modifyAssertion]: (_h, p) => { p.htu = `${EDGE}/elsewhere`; } });
  const wrongPath = await viaLibrary(config, token, otherPath);
  c.check('a proof for another path of the same origin: 401 invalid_dpop_proof',
    wrongPath.status === 401 && wrongPath.error === 'invalid_dpop_proof', JSON.stringify({ ...wrongPath, thrown: String(wrongPath.thrown) }));
  const asGet = oidc.getDPoPHandle(config, keys, { [oidc.modifyAssertion]: (_h, p) => { p.htm = 'GET'; } });
  const wrongMethod = await viaLibrary(config, token, asGet);
  c.check('a proof for another method (htm GET on a POST): 401 invalid_dpop_proof',
    wrongMethod.status === 401 && wrongMethod.error === 'invalid_dpop_proof' && wrongMethod.description === 'DPoP proof htm does not match the request method',
    JSON.stringify({ ...wrongMethod, thrown: String(wrongMethod.thrown) }));
  const thief = oidc.getDPoPHandle(config, await oidc.randomDPoPKeyPair('ES256'));
  const stolen = await viaLibrary(config, token, thief);
  c.check('the token with a good proof from another key: 401 invalid_dpop_proof',
    stolen.status === 401 && stolen.error === 'invalid_dpop_proof' && stolen.description === 'DPoP proof key is not the key the token is bound to',
    JSON.stringify({ ...stolen, thrown: String(stolen.thrown) }));
  const noProof = mcpHeaders();
  noProof.set('authorization', `DPoP ${token}`);
  refused('Authorization: DPoP without a proof', await send(EDGE, noProof), 'invalid_dpop_proof', 'malformed DPoP proof: no DPoP header');
  const asBearer = mcpHeaders();
  asBearer.set('authorization', `Bearer ${token}`);
  const bearer = await send(EDGE, asBearer);
  c.check('the same token as Bearer: 401, a DPoP challenge only (require mode), nothing forwarded',
    bearer.status === 401 && /^DPoP algs="[^"]*ES256[^"]*"/.test(bearer.www) && !/Bearer/.test(bearer.www) && bearer.forwarded === 0,
    `got ${bearer.status}, WWW-Authenticate: ${bearer.www}, forwarded ${bearer.forwarded}`);
  const proofsRefused = (await refusedProofs()) - proofsRefusedBefore;
  c.equal('the edge counted each refused proof (replay, two htu, htm, key, none) in token_rejections_total{reason="dpop_proof"}',
    proofsRefused, accepted?.status === 200 ? 6 : 5);
  if (accepted?.status === 200) {
    const withProof = new Headers(accepted.headers);
    withProof.set('authorization', `Bearer ${token}`);
    const bearerAndProof = await send(EDGE, withProof, accepted.body);
    c.check('the same token as Bearer beside a DPoP header: 401, nothing forwarded',
      bearerAndProof.status === 401 && bearerAndProof.forwarded === 0, `got ${bearerAndProof.status}, WWW-Authenticate: ${bearerAndProof.www}`);
  }

  // An Ed25519 key, whose proofs the library signs as RFC 9864 names them ("Ed25519", not "EdDSA").
  const edKeys = await oidc.randomDPoPKeyPair('Ed25519');
  const edHandle = oidc.getDPoPHandle(config, edKeys);
  const edGrant = await c.step('a token bound to an Ed25519 key', () =>
    oidc.clientCredentialsGrant(config, { resource: RESOURCE, scope: SCOPES }, { DPoP: edHandle }));
  if (edGrant) {
    log.length = 0;
    const edCall = await viaLibrary(config, edGrant.access_token, edHandle);
    const edProof = proofOf(log.at(-1)?.headers ?? new Headers());
    c.check('an Ed25519 proof (alg "Ed25519") with its bound token: 200',
      edCall.status === 200 && edProof && decodeProtectedHeader(edProof).alg === 'Ed25519',
      JSON.stringify({ status: edCall.status, header: edProof && decodeProtectedHeader(edProof), thrown: String(edCall.thrown) }));
  }

  // --- 4. nonces, across two replicas -------------------------------------------------------------
  console.log('-- nonces: "nonce-a" and "nonce-b" (one --dpop-nonce-key) behind a load balancer that alternates');
  let turn = 0;
  route = () => [NONCE_A, NONCE_B][turn++ % 2];
  log.length = 0;
  const nonceReport = await mcpSession(config, token, dpop, 'nonce replicas');
  const [challenge, retried, ...rest] = log;
  console.log(`   requests: ${log.map((e) => `${e.method} ${e.sentTo === NONCE_A ? 'a' : 'b'} ${e.status}${claimsOf(proofOf(e.headers))?.nonce ? ' (nonce)' : ''}`).join(', ')}`);
  c.check('the first request (no nonce yet) got 401 use_dpop_nonce with a DPoP-Nonce header',
    challenge?.status === 401 && /^DPoP .*error="use_dpop_nonce"/.test(challenge.www) && Boolean(challenge.nonce) &&
      claimsOf(proofOf(challenge.headers))?.nonce === undefined,
    JSON.stringify({ status: challenge?.status, www: challenge?.www, nonce: challenge?.nonce }));
  c.check('the library retried by itself with that nonce, at the other replica, which accepted it',
    retried?.status === 200 && retried.sentTo !== challenge?.sentTo && claimsOf(proofOf(retried.headers))?.nonce === challenge?.nonce &&
      retried.body === challenge?.body,
    JSON.stringify({ status: retried?.status, sentTo: retried?.sentTo, nonce: claimsOf(proofOf(retried?.headers ?? new Headers()))?.nonce }));
  c.check('the rest of the session ran on that nonce at both replicas, without another 401',
    rest.length >= 2 && rest.every((e) => e.status < 400 && claimsOf(proofOf(e.headers))?.nonce === challenge?.nonce) &&
      new Set(rest.map((e) => e.sentTo)).size === 2,
    JSON.stringify(rest.map((e) => [e.method, e.sentTo, e.status])));
  if (nonceReport) c.equal('whoami through a nonce replica: X-Auth-Dpop-Jkt = cnf.jkt', nonceReport.x_auth_dpop_jkt, jkt);
  const wrapped = retried?.session;
  const later = rest.filter((e) => e.headers.get('mcp-session-id') === wrapped);
  c.check('the session id the client got is bound to it by the edge (s1.…), and both replicas took it',
    /^s1\./.test(wrapped ?? '') && later.length === rest.length && new Set(later.map((e) => e.sentTo)).size === 2,
    JSON.stringify({ wrapped, sent: rest.map((e) => [e.sentTo, e.headers.get('mcp-session-id'), e.status]) }));
  if (nonceReport && wrapped) {
    c.check('the MCP server saw its own session id, not the wrapped one',
      typeof nonceReport.session_id === 'string' && !nonceReport.session_id.startsWith('s1.') &&
        Buffer.from(wrapped.split('.').at(-1), 'base64url').toString('utf8') === nonceReport.session_id,
      JSON.stringify({ wrapped, server: nonceReport.session_id }));
  }

  route = () => NONCE_A;
  const madeUp = oidc.getDPoPHandle(config, keys, { [oidc.modifyAssertion]: (_h, p) => { p.nonce = 'bm90LWEtbm9uY2U'; } });
  const badNonce = await viaLibrary(config, token, madeUp);
  c.check('a made-up nonce: 401 use_dpop_nonce (after the library\'s own retry)',
    badNonce.status === 401 && badNonce.error === 'use_dpop_nonce', JSON.stringify({ ...badNonce, thrown: String(badNonce.thrown) }));

  log.length = 0;
  const atA = await viaLibrary(config, token, dpop);
  const acceptedAtA = log.at(-1);
  c.check('a fresh proof with the nonce at nonce-a: 200', atA.status === 200 && acceptedAtA?.sentTo === NONCE_A, JSON.stringify(atA));
  if (acceptedAtA?.status === 200) {
    refused('replayed at nonce-a', await send(NONCE_A, acceptedAtA.headers, acceptedAtA.body), 'invalid_dpop_proof', 'DPoP proof has been used before');
    const atB = await send(NONCE_B, acceptedAtA.headers, acceptedAtA.body);
    c.check('replayed at nonce-b: accepted once (each replica has its own replay cache; the nonce bounds how long)',
      atB.status === 200 && atB.forwarded === 1, `got ${atB.status}, WWW-Authenticate: ${atB.www}`);
    refused('replayed at nonce-b again', await send(NONCE_B, acceptedAtA.headers, acceptedAtA.body), 'invalid_dpop_proof', 'DPoP proof has been used before');
  }
}

c.finish();
// The SDK's standalone GET stream runs on the library's fetch, which the transport cannot abort.
process.exit();
