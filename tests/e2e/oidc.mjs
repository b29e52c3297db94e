// A real OpenID provider (node-oidc-provider) on 127.0.0.1 with an ephemeral port: the
// authorization server the edge is put in front of in the end-to-end checks.
//
// It prints one line, `OIDC_READY port=PORT issuer=ISSUER`, once it listens, and exits on
// SIGTERM or SIGINT. Optional env: E2E_RESOURCE (the MCP resource the provider accepts as an
// RFC 8707 resource indicator), E2E_SCOPES (space-separated scopes of it), E2E_ISSUER_PATH
// (e.g. `/oidc`: the provider is mounted there, and the issuer is http://127.0.0.1:PORT/oidc),
// E2E_CLIENT_ID and E2E_CLIENT_SECRET (a confidential client allowed the client_credentials
// grant, so the checks get real access tokens without a browser).
//
// Access tokens for E2E_RESOURCE are JWTs (RS256, signed with the key published at jwks_uri,
// `aud` = the resource), as an MCP server that validates tokens itself expects them. For the
// edge's own token checks:
//   E2E_TOKEN_FORMAT  `jwt` (default) or `opaque` (tokens only the provider can read, checked by
//                     introspection)
//   E2E_JWT_ALG       the JWS algorithm of E2E_RESOURCE's JWTs (default RS256); any other value
//                     makes the provider sign with freshly generated keys, an RSA and a P-256 key,
//                     both published at jwks_uri
//   E2E_OTHER_RESOURCE another resource indicator the provider accepts (same scopes and format,
//                     RS256 when JWT): tokens for a different MCP server
//   E2E_EDGE_CLIENT_ID, E2E_EDGE_CLIENT_SECRET  a confidential client (client_secret_basic) for
//                     the edge; set, they enable the introspection (RFC 7662) and revocation
//                     (RFC 7009) endpoints, where the edge's client may introspect any token and
//                     every client its own
//
// DPoP (RFC 9449, oidc-provider's `features.dPoP`, set on here so that a new default cannot turn
// it off): a token request with a `DPoP` proof gets a token bound to the proof's key, whose JWT
// carries `cnf.jkt` (the key's RFC 7638 thumbprint) and whose `token_type` is `DPoP`.
//
// Side door, outside the provider's routes: GET /_e2e/stats answers how many introspection
// requests reached the provider, so the checks can see the edge's cache at work.
//
// oidc-provider serves its metadata at `<issuer>/.well-known/openid-configuration` and
// `<issuer>/.well-known/oauth-authorization-server`. With an issuer path, neither RFC 8414
// path-inserted form exists, so the edge finds the document at the third step of its discovery
// order (`/oidc/.well-known/openid-configuration`), after two 404s.

import { generateKeyPairSync } from 'node:crypto';
import http from 'node:http';
import Provider from 'oidc-provider';

const resource = process.env.E2E_RESOURCE ?? '';
const resourceScopes = process.env.E2E_SCOPES ?? '';
const serviceClientId = process.env.E2E_CLIENT_ID ?? 'e2e-service';
const serviceClientSecret = process.env.E2E_CLIENT_SECRET ?? 'e2e-service-secret-not-a-secret';
const tokenFormat = process.env.E2E_TOKEN_FORMAT || 'jwt';
const jwtAlg = process.env.E2E_JWT_ALG || 'RS256';
const otherResource = process.env.E2E_OTHER_RESOURCE ?? '';
const edgeClientId = process.env.E2E_EDGE_CLIENT_ID ?? '';
const edgeClientSecret = process.env.E2E_EDGE_CLIENT_SECRET ?? '';
if (!['jwt', 'opaque'].includes(tokenFormat)) {
  console.error(`E2E_TOKEN_FORMAT must be jwt or opaque, got ${tokenFormat}`);
  process.exit(2);
}

// Signing keys: the provider's development key, unless another algorithm is asked for; then a
// fresh RSA and P-256 key, so that the published JWKS holds keys of two types.
const privateJwk = (type, options, alg) => ({
  ...generateKeyPairSync(type, options).privateKey.export({ format: 'jwk' }),
  alg,
  use: 'sig',
  kid: `e2e-${alg.toLowerCase()}`,
});
const jwks = jwtAlg === 'RS256'
  ? undefined
  : { keys: [privateJwk('rsa', { modulusLength: 2048 }, 'RS256'), privateJwk('ec', { namedCurve: 'P-256' }, 'ES256')] };

const server = http.createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(0, '127.0.0.1', resolve);
});
const { port } = server.address();
const mount = (process.env.E2E_ISSUER_PATH ?? '').replace(/\/$/, '');
if (mount && !/^\/[A-Za-z0-9._~-]+(\/[A-Za-z0-9._~-]+)*$/.test(mount)) {
  console.error(`E2E_ISSUER_PATH must look like /oidc, got ${mount}`);
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}${mount}`;

const provider = new Provider(issuer, {
  clients: [
    {
      // A pre-registered public client, for anyone poking at the provider by hand.
      client_id: 'e2e-public',
      token_endpoint_auth_method: 'none',
      application_type: 'native',
      redirect_uris: ['http://127.0.0.1:33418/callback'],
    },
    {
      // A machine client: client_credentials with a resource indicator gives a JWT access token
      // for the edge's resource (what the gate round's clients present).
      client_id: serviceClientId,
      client_secret: serviceClientSecret,
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: resourceScopes || undefined,
    },
    ...(edgeClientId
      ? [{
        // The edge: it only asks the introspection endpoint about the tokens it is shown.
        client_id: edgeClientId,
        client_secret: edgeClientSecret,
        token_endpoint_auth_method: 'client_secret_basic',
        grant_types: [],
        response_types: [],
        redirect_uris: [],
      }]
      : []),
  ],
  jwks,
  // PKCE S256 is what MCP clients require the server to advertise.
  pkce: { required: () => true },
  scopes: ['openid', 'offline_access', ...resourceScopes.split(' ').filter(Boolean)],
  features: {
    // MCP clients register themselves (RFC 7591).
    registration: { enabled: true },
    // Machine-to-machine tokens (the SDKs' client-credentials providers).
    clientCredentials: { enabled: true },
    // MCP clients send `resource` (RFC 8707) naming the MCP server.
    resourceIndicators: {
      enabled: true,
      defaultResource: async (_ctx, _client, oneOf) => oneOf ?? (resource || undefined),
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, indicator) => {
        const alg = indicator === resource ? jwtAlg : 'RS256';
        if ((resource && indicator === resource) || (otherResource && indicator === otherResource)) {
          return tokenFormat === 'jwt'
            ? { scope: resourceScopes, audience: indicator, accessTokenFormat: 'jwt', jwt: { sign: { alg } } }
            : { scope: resourceScopes, audience: indicator, accessTokenFormat: 'opaque' };
        }
        throw new Provider.errors.InvalidTarget();
      },
    },
    // RFC 7662 for the edge's `--token-check introspect`, RFC 7009 to revoke a token mid-run.
    introspection: {
      enabled: Boolean(edgeClientId),
      allowedPolicy: async (_ctx, client, token) => client.clientId === edgeClientId || client.clientId === token.clientId,
    },
    revocation: { enabled: Boolean(edgeClientId) },
    // RFC 9449: a token request with a proof gets a token bound to the proof's key.
    dPoP: { enabled: true },
  },
  // Quiet the development-only warnings about generated keys: this provider lives for one run.
  cookies: { keys: ['mcp-auth-edge-e2e-not-a-secret'] },
});
provider.proxy = false;

const callback = provider.callback();
const stats = { introspections: 0 };
server.on('request', (req, res) => {
  const path = req.url.split('?')[0];
  if (path === '/_e2e/stats') {
    return res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(stats));
  }
  if (req.method === 'POST' && path === `${mount}/token/introspection`) stats.introspections += 1;
  if (!mount) return callback(req, res);
  // The provider routes below its mount path (its own URLs carry the issuer's path).
  if (req.url === mount || req.url.startsWith(`${mount}/`) || req.url.startsWith(`${mount}?`)) {
    // As express does when mounting: oidc-provider reads its mount path from originalUrl.
    req.originalUrl = req.url;
    req.url = req.url.slice(mount.length) || '/';
    return callback(req, res);
  }
  res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not_found"}');
});

const stop = (signal) => {
  server.close(() => process.exit(0));
  server.closeAllConnections?.();
  // Bounded: never outlive a stuck connection.
  setTimeout(() => process.exit(0), 2000).unref();
  process.stderr.write(`oidc.mjs: ${signal}, stopping\n`);
};
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));

process.stdout.write(`OIDC_READY port=${port} issuer=${issuer}\n`);
